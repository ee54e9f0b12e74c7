"""The training loop's two ends that are not a result (no torch here: the CLI maps them to exit codes
before anything heavy is imported)."""

from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """The loss (or a parameter) became NaN or infinite; the message names the last good checkpoint."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C: last.pt was written (or kept); the message is the command that resumes."""
