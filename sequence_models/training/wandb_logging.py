"""Weights & Biases as a second sink of MetricsLog (--wandb): the same scalars as tensorboard, at the
same steps, plus the videos; the run's name and its to_plain config come from the run.

Optional: nothing here is imported unless --wandb is given (pip install -e '.[wandb]'). A resumed
run continues the same wandb run: its id is kept in runs/<name>/wandb_id.txt (wandb drops the
re-logged steps between the checkpoint and where the stopped run had got to; metrics.jsonl and
tensorboard purge them). Files go to runs/<name>/wandb/ unless WANDB_DIR says otherwise;
WANDB_MODE=offline logs without a network (`wandb sync` uploads later).
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path
from typing import Any

ID_FILE = "wandb_id.txt"
INSTALL_HINT = "--wandb needs the wandb package: pip install -e '.[wandb]'"


def wandb_missing() -> bool:
    return importlib.util.find_spec("wandb") is None


class WandbSink:
    """One wandb run for one run folder."""

    def __init__(self, run: Any, run_dir: Path, config: dict[str, Any] | None):
        if wandb_missing():
            from .config import ConfigError

            raise ConfigError(INSTALL_HINT)
        import wandb

        self._wandb = wandb
        id_file = run_dir / ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]  # wandb ids: [a-z0-9]
        id_file.write_text(run_id + "\n")
        directory = None if os.environ.get("WANDB_DIR") else str(run_dir)
        self.run = wandb.init(project=run.wandb_project, entity=run.wandb_entity or None,
                              group=run.wandb_group or None, tags=list(run.wandb_tags) or None, name=run_dir.name,
                              id=run_id, resume="allow", config=config or {}, dir=directory)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def log_videos(self, step: int, videos: list) -> None:
        self.run.log({v.tag: self._wandb.Video(str(v.path), caption=v.path.name) for v in videos}, step=step)

    def close(self) -> None:
        self.run.finish()
