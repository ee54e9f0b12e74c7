"""Selective copying (Mamba; the minGRU paper's setting) with any backbone.

    python scripts/train_copy.py                                    # cpu-small preset: L=256, M=16, minutes on a CPU
    python scripts/train_copy.py --preset mingru-paper              # d_model 64, expansion 6, 3 layers, L=4096, M=16, vocab 16
    python scripts/train_copy.py --steps 500 backbone:mingru --backbone.n-layers 1
    python scripts/train_copy.py backbone:lru --backbone.d-model 64  # another backbone starts from its own defaults
    python scripts/train_copy.py --run-name NAME --resume           # continue runs/NAME exactly
    python scripts/train_copy.py --config runs/NAME/config.yaml     # re-run a run (flags after it override)

A preset is a complete set of defaults; every flag overrides it. Naming `backbone:NAME` keeps the
preset's backbone fields if NAME is the preset's backbone and starts from NAME's defaults otherwise.
Writes the run folder every task writes (sequence_models/training/run_folder.py) and prints a
markdown results table.
"""

from __future__ import annotations

from sequence_models.tasks.copy_training import parse_args, run
from sequence_models.training.cli import run_cli


def main(argv: list[str] | None = None) -> dict:
    return run(parse_args(argv, description=__doc__))


if __name__ == "__main__":
    run_cli(main)
