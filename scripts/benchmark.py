"""`python scripts/benchmark.py ...` = `db-benchmark ...` (agents.commands.benchmark; the suites and what
they measure: agents/benchmarks/suites.py, `db-benchmark --help`). A thin alias kept for a source
checkout and for the tests, which call main(args).
"""

from __future__ import annotations

from agents.benchmarks.suites import Args, run_benchmarks as main
from agents.commands import benchmark

__all__ = ["Args", "main", "benchmark"]

if __name__ == "__main__":
    benchmark()
