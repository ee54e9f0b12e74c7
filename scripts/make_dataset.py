"""`python scripts/make_dataset.py ...` = `db-make-dataset ...` (agents.commands.make_dataset; `db-make-dataset --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from agents.commands import make_dataset, make_dataset_main as main

__all__ = ["main", "make_dataset"]

if __name__ == "__main__":
    make_dataset()
