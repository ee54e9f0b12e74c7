"""Checkpoints: atomic writes, weights_only reads, one format-version check.

A checkpoint is a dict of tensors, dicts, lists and plain numbers/strings, so it loads with
`torch.load(weights_only=True)`: loading one never runs code from it. `save_checkpoint` writes to a
temporary file of a unique name beside the target, then renames it over the target, so a crash or a
full disk mid-save never leaves a truncated checkpoint (and the temporary file is removed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 2
"""Raised when what a checkpoint holds changes shape; older files are refused with a message."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read (corrupt, truncated, not a checkpoint) or does not fit."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """torch.save {format_version, **payload} to a unique temporary file, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **payload}, f)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}") from e
        raise


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """torch.load(weights_only=True); a CheckpointError naming the file when it cannot be read or is
    of another format version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged or hostile file
        raise CheckpointError(
            f"checkpoint {path} cannot be read safely ({type(e).__name__}: {_first_line(e)[:200]}); it is corrupt, "
            "truncated, or not a checkpoint written by this project. Do not load it with weights_only=False "
            "unless you trust whoever made it: that runs any code the file holds"
        ) from e
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a checkpoint dict")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this version of decision-backbones reads "
            f"version {FORMAT_VERSION} (retrain, or evaluate it with the release that wrote it)"
        )
    return payload
