"""One run on disk, the same for every task (agent, language model, copying):

    runs/<name>/config.yaml      {task, command, config}: `--config runs/<name>/config.yaml` re-runs it
    runs/<name>/events.*         tensorboard: train/*, eval/* (or valid/*), the same scalars as metrics.jsonl
    runs/<name>/metrics.jsonl    one JSON object per log or evaluation step; each step once, also after a resume
    runs/<name>/checkpoints/     last.pt (atomic, every checkpoint_every steps and at the end), best.pt (best evaluation)
    runs/<name>/results.json     the task's final numbers, wall time (and the error, when evaluation failed)
    runs/<name>/videos/          rendered evaluation episodes (agent --eval-video N), MP4 or GIF
    runs/<name>/wandb_id.txt     with --wandb: the wandb run id, so --resume continues the same wandb run
    runs/<name>/.lock            held while a process writes the folder

A new run never reuses a folder: `claim_fresh` makes NAME, else NAME-2, NAME-3, ... with an atomic
mkdir, so two processes starting together never share one. A process that writes a folder holds an
exclusive lock on it (flock: released when the process dies), so a second writer of the same run,
a second `--resume` say, stops with one line instead of interleaving files.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml


class RunFolderError(RuntimeError):
    """The run folder cannot be made, is taken by another process, or cannot be written."""


def _describe_os_error(path: Path, e: OSError) -> str:
    reason = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system",
              errno.ENOTDIR: "a path component is a file, not a folder", errno.ENOSPC: "no space left on the device"}
    return f"{path}: {reason.get(e.errno, e.strerror or str(e))}"


def numbered_names(name: str) -> Iterator[str]:
    """name, name-2, name-3, ...: the folder names a run called `name` may get (claim_fresh's order)."""
    yield name
    yield from (f"{name}-{i}" for i in itertools.count(2))


def claim_fresh(runs_dir: str | Path, name: str) -> Path:
    """Create runs_dir/name, else name-2, name-3, ...: the first that does not exist (atomic mkdir)."""
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"cannot make the runs folder {_describe_os_error(runs_dir, e)}; pick another --runs-dir") from None
    for candidate in numbered_names(name):
        try:
            (runs_dir / candidate).mkdir()
            return runs_dir / candidate
        except FileExistsError:
            continue
        except OSError as e:
            raise RunFolderError(f"cannot make the run folder {_describe_os_error(runs_dir / candidate, e)}; "
                                 "pick another --runs-dir") from None


class RunFolder:
    """An existing run folder, locked by this process while it writes (a context manager)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_file = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def last(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "checkpoints" / "best.pt"

    def lock(self) -> "RunFolder":
        try:
            self._lock_file = open(self.path / ".lock", "a+")
        except OSError as e:
            raise RunFolderError(f"cannot write the run folder {_describe_os_error(self.path, e)}") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            self._lock_file.close()
            self._lock_file = None
            raise RunFolderError(f"run folder {self.path} is being written by {holder}; wait for it to finish, "
                                 "or start a new run (another --run-name)") from None
        self._lock_file.truncate(0)
        self._lock_file.write(f"process {os.getpid()}")
        self._lock_file.flush()
        return self

    def unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> "RunFolder":
        return self.lock()

    def __exit__(self, *exc) -> None:
        self.unlock()

    def write_json(self, filename: str, data: dict[str, Any]) -> Path:
        """Write atomically (temporary file, then rename)."""
        path = self.path / filename
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=2))
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise RunFolderError(f"cannot write {_describe_os_error(path, e)}") from None
        return path

    def write_config(self, document: dict[str, Any]) -> None:
        try:
            (self.path / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        except OSError as e:
            raise RunFolderError(f"cannot write {_describe_os_error(self.path / 'config.yaml', e)}") from None


@dataclass
class Video:
    """A rendered episode written by a task: logged to tensorboard as a frame strip (add_video needs
    moviepy; a strip needs nothing) plus its path as text, and to wandb as the video file itself."""

    tag: str
    path: Path
    strip: np.ndarray  # (H, W', 3) uint8: a few frames side by side
    frames: int
    fps: float
    info: dict[str, Any] = field(default_factory=dict)  # return, normalized score, length: plain data


class MetricsLog:
    """Scalars to tensorboard (events.* in the run folder) and to metrics.jsonl, and with --wandb to
    Weights & Biases too (sequence_models/training/wandb_logging.py); videos as frame strips.

    `resume_step`: the step a resumed run continues from; lines of later steps (written after that
    checkpoint by the run that stopped) are dropped, and tensorboard purges them, so each step is
    logged once. `run` (the RunConfig) and `config` (to_plain's) name and describe the wandb run."""

    def __init__(self, run_dir: str | Path, resume_step: int = 0, run: Any = None, config: dict[str, Any] | None = None):
        from torch.utils.tensorboard import SummaryWriter  # a slow import; only when logging

        self.run_dir = Path(run_dir)
        self.wandb = None
        if run is not None and getattr(run, "wandb", False):
            from .wandb_logging import WandbSink  # imported only with --wandb

            self.wandb = WandbSink(run, self.run_dir, config)
        path = self.run_dir / "metrics.jsonl"
        if resume_step and path.is_file():
            kept = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        self.writer = SummaryWriter(str(self.run_dir), purge_step=resume_step + 1 if resume_step else None)
        self.file = open(path, "a")

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()
        if self.wandb is not None:
            self.wandb.log(step, values)

    def log_videos(self, step: int, videos: list[Video]) -> None:
        """Tensorboard: each video's frame strip as an image and its file as text; wandb: the file."""
        for video in videos:
            self.writer.add_image(video.tag, video.strip, step, dataformats="HWC")
            self.writer.add_text(video.tag + "/file", str(video.path), step)
        if videos and self.wandb is not None:
            self.wandb.log_videos(step, videos)

    def close(self) -> None:
        self.writer.close()
        self.file.close()
        if self.wandb is not None:
            self.wandb.close()


class NoMetrics:
    """What ranks other than 0 log to: nothing."""

    def log(self, step: int, values: dict[str, float]) -> None:
        pass

    def log_videos(self, step: int, videos: list[Video]) -> None:
        pass

    def close(self) -> None:
        pass


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 0
