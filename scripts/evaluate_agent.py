"""Evaluate a trained Decision agent: several return targets x episodes in one vector env.

    python scripts/evaluate_agent.py runs/NAME                          # best.pt (else last.pt), the run's targets
    python scripts/evaluate_agent.py runs/NAME/checkpoints/last.pt --mode window --episodes 20
    python scripts/evaluate_agent.py runs/NAME --targets 9000 6000 3000 --vectorization async

Prints mean ± std return and normalized score per target (0 = random policy, 100 = the dataset's
reference expert; the reference's name is printed with it), episode lengths and env steps/s, and
writes the same to runs/NAME/eval-<checkpoint>-<mode>.json. The checkpoint carries the env spec and
the reference, so no dataset is needed. A checkpoint loads with weights_only=True (it never runs code).
"""

from __future__ import annotations

from agents.evaluate_checkpoint import EvaluateArgs, evaluate_checkpoint
from sequence_models.training.cli import run_cli
from sequence_models.training.config import cli


def main(argv: list[str] | None = None) -> dict:
    return evaluate_checkpoint(cli(EvaluateArgs, argv, __doc__))


if __name__ == "__main__":
    run_cli(main)
