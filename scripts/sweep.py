"""`python scripts/sweep.py ...` = `db-sweep ...` (agents.commands.sweep; `db-sweep --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from agents.commands import sweep, sweep_main as main

__all__ = ["main", "sweep"]

if __name__ == "__main__":
    sweep()
