"""`python scripts/train_agent.py ...` = `db-train-agent ...` (agents.commands.train_agent; `db-train-agent --help` says what it does).

A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from agents.commands import train_agent, train_agent_main as main

__all__ = ["main", "train_agent"]

if __name__ == "__main__":
    train_agent()
