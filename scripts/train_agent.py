"""Train a Decision agent on a Minari dataset with any sequence backbone, then evaluate it.

    python scripts/train_agent.py                                   # built-in dataset, small minGRU, minutes on a CPU
    python scripts/train_agent.py backbone:transformer --backbone.d-model 64 --backbone.n-layers 2
    python scripts/train_agent.py backbone:gru --backbone.gradient dsf
    python scripts/train_agent.py --preset hopper-medium            # DT's settings on mujoco/hopper/medium-v0
    python scripts/train_agent.py --preset hopper-medium --download backbone:lru
    python scripts/train_agent.py --run-name NAME --resume          # continue runs/NAME exactly where it stopped
    python scripts/train_agent.py --config runs/NAME/config.yaml    # re-run a run (flags after it override)
    torchrun --nproc-per-node 2 scripts/train_agent.py --batch-size 32   # data parallel: 2 ranks x 32 = global batch 64

Presets: quick (default) and {hopper,halfcheetah,walker2d}-{simple,medium,expert}; see agents/config.py.
Writes runs/<name>/{config.yaml, events.*, metrics.jsonl, checkpoints/{last,best}.pt, results.json}.
"""

from __future__ import annotations

from agents.config import parse_args
from agents.run import train_agent
from sequence_models.training.cli import run_cli


def main(argv: list[str] | None = None) -> dict:
    return train_agent(parse_args(argv, description=__doc__))


if __name__ == "__main__":
    run_cli(main)
