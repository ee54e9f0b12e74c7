"""`python scripts/measure_reference_scores.py ...` = `db-measure-reference-scores ...` (agents.commands.measure_reference_scores; `db-measure-reference-scores --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from agents.commands import measure_reference_scores, measure_reference_scores_main as main

__all__ = ["main", "measure_reference_scores"]

if __name__ == "__main__":
    measure_reference_scores()
