"""Evaluating a saved agent (scripts/evaluate_agent.py): a checkpoint or run folder -> per-target
returns and normalized scores, printed and written as JSON beside the run.

The checkpoint carries the env to evaluate in and the reference score, so no dataset is needed; it
loads with weights_only=True and its env spec is rebuilt from plain data (it never runs code).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from sequence_models.training.config import ConfigError, override


@dataclass(frozen=True)
class EvaluateArgs:
    checkpoint: tyro.conf.Positional[str]
    """a checkpoint file, or a run folder (its checkpoints/best.pt, else last.pt)"""
    targets: tuple[float, ...] = ()
    """return targets (default: the run's)"""
    episodes: int = 0
    """episodes per target (default: the run's final_eval_episodes, else its eval_episodes)"""
    mode: Literal["", "window", "recurrent"] = ""
    """window (DT: re-run the last K steps) or recurrent (carry the state); default: the run's"""
    seed: int | None = None
    """episode e resets with seed + e, seed >= 0 (default: the run's evaluation seed)"""
    max_steps: int = -1
    """cap on steps per episode (-1: the run's, 0: the env's time limit)"""
    vectorization: Literal["auto", "sync", "async"] = "auto"
    device: str = "auto"
    cpu_threads: int = 1
    """torch threads on CPU (0: torch's default)"""
    allow_foreign_env: bool = False
    """accept an env spec whose entry point or wrappers are not Gymnasium's registered ones (that runs code
    the checkpoint names): only for checkpoints you trust"""
    output: str = ""
    """JSON file to write (default: <run>/eval-<checkpoint>-<mode>.json)"""
    video: int = 0
    """render the first N episodes of each target to <run>/videos/eval-<checkpoint>-step<step>-... (MP4, else GIF;
    pip install -e '.[video]'), replayed after the evaluation in one rendering env (the same seeds and policy)"""


def resolve_checkpoint(path: str) -> Path:
    from sequence_models.training.checkpoint import CheckpointError

    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            for candidate in (p / "checkpoints" / name, p / name):
                if candidate.is_file():
                    return candidate
        raise CheckpointError(f"no checkpoints/best.pt or last.pt under {p}")
    return p


def check(args: EvaluateArgs) -> None:
    """Bad input stops before the (slow) evaluation starts."""
    problems = []
    if args.seed is not None and args.seed < 0:
        problems.append(f"--seed must be >= 0, got {args.seed}")
    if args.episodes < 0 or args.cpu_threads < 0 or args.max_steps < -1 or args.video < 0:
        problems.append("--episodes, --cpu-threads and --video must be >= 0, --max-steps >= -1")
    if args.video and args.episodes and args.video > args.episodes:
        problems.append(f"--video {args.video} is more than the {args.episodes} --episodes per target")
    if args.output and not Path(args.output).parent.is_dir():
        problems.append(f"--output {args.output}: the folder {Path(args.output).parent} does not exist")
    if problems:
        raise ConfigError("; ".join(problems))


def evaluate_checkpoint(args: EvaluateArgs) -> dict:
    """Evaluate, print the per-target lines, write the JSON; returns what it holds."""
    import torch  # here, not at the top: `db-evaluate-agent --help` needs only EvaluateArgs

    from agents.checkpoints import load_agent
    from agents.run import run_evaluation, run_videos
    from agents.videos import check_video_support
    from sequence_models.training.checkpoint import load_checkpoint
    from sequence_models.training.device import pick_device

    check(args)
    if args.video:
        check_video_support()
    device = pick_device(args.device)
    if device.type == "cpu" and args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    path = resolve_checkpoint(args.checkpoint)
    model, config, info = load_agent(path, device, allow_foreign_env=args.allow_foreign_env)
    overrides = {}
    if args.max_steps >= 0:
        overrides["eval_max_steps"] = args.max_steps
    config = override(config, eval_vectorization=args.vectorization, allow_foreign_env=args.allow_foreign_env,
                      **overrides)
    targets = args.targets or tuple(config.eval_targets) or info.default_targets()
    report = run_evaluation(model, config, info, targets, mode=args.mode or config.eval_mode,
                            episodes=args.episodes or config.final_eval_episodes or config.eval_episodes,
                            seed=args.seed)
    print(f"{path}: {config.backbone.name} ({config.backbone.gradient}) on {info.env_id}")
    print("\n".join(report.lines()))
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    output = Path(args.output) if args.output else run_dir / f"eval-{path.stem}-{report.mode}.json"
    summary = {"checkpoint": str(path), **report.summary()}
    if args.video:
        step = int(load_checkpoint(path, map_location="cpu").get("step", 0))  # load_agent does not return it
        videos, rate = run_videos(model, config, info, targets, args.video, run_dir / "videos", step,
                                  mode=report.mode, seed=args.seed, prefix=f"eval-{path.stem}-")
        summary["videos"] = [str(v.path) for v in videos]
        summary["video_env_steps_per_s"] = rate
        print(f"videos ({rate:.0f} rendered env steps/s): " + ", ".join(str(v.path) for v in videos))
    output.write_text(json.dumps(summary, indent=2))
    print(f"written: {output}")
    return summary
