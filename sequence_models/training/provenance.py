"""Which code trained a run: results.json's "code" field, shown beside each run of the claims tables.

A run read back by the claims suite matches the current settings, not necessarily the current code; a
change that rounds differently (a fused kernel, a fused optimizer) moves a result by as much as a seed
would, so every run records the commit it was trained at.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip()


@functools.cache
def code_version() -> str:
    """The checkout's short commit ("-dirty" when a tracked file differs from it), else the installed
    package's version, else "unknown"."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        return commit + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"decision-backbones {metadata.version('decision-backbones')}"
    except metadata.PackageNotFoundError:
        return "unknown"
