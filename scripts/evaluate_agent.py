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

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro

from agents.checkpoints import load_agent
from agents.run import default_targets, run_evaluation
from sequence_models.training.checkpoint import CheckpointError
from sequence_models.training.device import pick_device


@dataclass(frozen=True)
class Args:
    checkpoint: tyro.conf.Positional[str]
    """a checkpoint file, or a run folder (its checkpoints/best.pt, else last.pt)"""
    targets: tuple[float, ...] = ()
    """return targets (default: the run's)"""
    episodes: int = 0
    """episodes per target (default: the run's eval_episodes)"""
    mode: Literal["", "window", "recurrent"] = ""
    """window (DT: re-run the last K steps) or recurrent (carry the state); default: the run's"""
    seed: int | None = None
    """episode e resets with seed + e (default: the run's evaluation seed)"""
    max_steps: int = -1
    """cap on steps per episode (-1: the run's, 0: the env's time limit)"""
    vectorization: Literal["auto", "sync", "async"] = "auto"
    device: str = "auto"
    cpu_threads: int = 1
    """torch threads on CPU (0: torch's default)"""
    output: str = ""
    """JSON file to write (default: <run>/eval-<checkpoint>-<mode>.json)"""


def resolve_checkpoint(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            for candidate in (p / "checkpoints" / name, p / name):
                if candidate.is_file():
                    return candidate
        raise CheckpointError(f"no checkpoints/best.pt or last.pt under {p}")
    return p


def main(args: Args) -> dict:
    device = pick_device(args.device)
    if device.type == "cpu" and args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    path = resolve_checkpoint(args.checkpoint)
    model, config, info = load_agent(path, device)
    overrides = {}
    if args.max_steps >= 0:
        overrides["eval_max_steps"] = args.max_steps
    config = dataclasses.replace(config, eval_vectorization=args.vectorization, **overrides)
    targets = args.targets or tuple(config.eval_targets) or default_targets(info)
    report = run_evaluation(model, config, info, targets, mode=args.mode or config.eval_mode,
                            episodes=args.episodes or config.eval_episodes, seed=args.seed)
    print(f"{path}: {config.backbone.name} ({config.backbone.gradient}) on {info['env_id']}")
    print("\n".join(report.lines()))
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    output = Path(args.output) if args.output else run_dir / f"eval-{path.stem}-{report.mode}.json"
    summary = {"checkpoint": str(path), **report.summary()}
    output.write_text(json.dumps(summary, indent=2))
    print(f"written: {output}")
    return summary


if __name__ == "__main__":
    try:
        main(tyro.cli(Args, description=__doc__))
    except (CheckpointError, ValueError) as e:
        sys.exit(f"error: {e}")
