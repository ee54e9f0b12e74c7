"""`python scripts/report.py ...` = `db-report ...` (agents.commands.report; `db-report --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from agents.commands import ReportArgs, report, report_main as main

__all__ = ["ReportArgs", "main", "report"]

if __name__ == "__main__":
    report()
