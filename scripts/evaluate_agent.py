"""`python scripts/evaluate_agent.py ...` = `db-evaluate-agent ...` (agents.commands.evaluate_agent; `db-evaluate-agent --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from agents.commands import evaluate_agent, evaluate_agent_main as main

__all__ = ["main", "evaluate_agent"]

if __name__ == "__main__":
    evaluate_agent()
