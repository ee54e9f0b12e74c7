"""`python scripts/train_copy.py ...` = `db-train-copy ...` (sequence_models.commands.train_copy; `db-train-copy --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from sequence_models.commands import train_copy, train_copy_main as main

__all__ = ["main", "train_copy"]

if __name__ == "__main__":
    train_copy()
