"""One training run on disk, shared by every training script (language models, copying, agents).

    runs/<name>/config.yaml      the resolved config      prepare_run_dir
    runs/<name>/events.*         tensorboard              MetricsLog
    runs/<name>/metrics.jsonl    one JSON object per log  MetricsLog
    runs/<name>/checkpoints/     last.pt, best.pt         save_checkpoint (atomic), load_checkpoint (safe)

Checkpoints hold only tensors, dicts, lists and plain numbers/strings, and load with
`torch.load(weights_only=True)`: loading a checkpoint never runs code from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import tyro
import yaml


def preset_cli(config_class, presets: dict, default_preset: str, argv: list[str] | None = None, description: str | None = None):
    """`--preset NAME` sets every default (a config, or a function returning one); tyro then applies the other flags."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(presets), default=default_preset)
    known, rest = pre.parse_known_args(argv)
    preset = presets[known.preset]
    default = preset() if callable(preset) else preset
    return tyro.cli(config_class, default=dataclasses.replace(default, preset=known.preset), args=rest, description=description)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float, cosine: bool = True) -> float:
    """Learning-rate factor: linear warm-up over warmup_steps, then constant or a cosine down to min_ratio."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not cosine:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def prepare_run_dir(runs_dir: str | Path, name: str, config: dict[str, Any]) -> Path:
    """Create runs_dir/name and write config.yaml (the plain-data config that re-runs it)."""
    run_dir = Path(runs_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run_dir


class MetricsLog:
    """Scalars to tensorboard (events.* in the run folder) and to metrics.jsonl, one line per call."""

    def __init__(self, run_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard import is slow; only when logging

        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(str(self.run_dir))
        self.file = open(self.run_dir / "metrics.jsonl", "a")

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.writer.close()
        self.file.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


