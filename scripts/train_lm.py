"""`python scripts/train_lm.py ...` = `db-train-lm ...` (sequence_models.commands.train_lm; `db-train-lm --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from sequence_models.commands import train_lm, train_lm_main as main

__all__ = ["main", "train_lm"]

if __name__ == "__main__":
    train_lm()
