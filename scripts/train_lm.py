"""Language modelling with any backbone: Tiny Shakespeare (characters), Penn Treebank, WikiText-2/103 (words).

    python scripts/train_lm.py                                         # cpu-small: Tiny Shakespeare, minutes on a CPU
    python scripts/train_lm.py --preset cpu-small backbone:lru --backbone.d-model 64 --backbone.n-layers 2
    python scripts/train_lm.py --preset shakespeare-char               # nanoGPT's shakespeare_char model
    python scripts/train_lm.py --preset dsf-ptb --data-dir ../shared/data/ptb --backbone.gradient dsf
    python scripts/train_lm.py --preset dsf-wikitext103                # downloads WikiText-103 (~180 MB zip)
    python scripts/train_lm.py --run-name NAME --resume                # continue runs/NAME exactly (stream state too)
    python scripts/train_lm.py --config runs/NAME/config.yaml          # re-run a run (flags after it override)
    torchrun --nproc-per-node 2 scripts/train_lm.py --batch-size 16    # data parallel (batch per rank)

A preset is a complete set of defaults; every flag overrides it. Batching (window | stream), the
carried state and evaluation: sequence_models/tasks/lm_training.py. Writes the run folder every task
writes (sequence_models/training/run_folder.py) and prints a markdown results table.
"""

from __future__ import annotations

from sequence_models.tasks.lm_training import parse_args, run
from sequence_models.training.cli import run_cli


def main(argv: list[str] | None = None) -> dict:
    return run(parse_args(argv, description=__doc__))


if __name__ == "__main__":
    run_cli(main)
