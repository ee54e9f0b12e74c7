"""`python scripts/claims.py ...` = `db-claims ...` (agents.commands.claims; `db-claims --help` says what it
does). A thin alias kept for a source checkout and for the tests, which call main(argv).
"""

from __future__ import annotations

from agents.commands import claims, claims_main as main

__all__ = ["main", "claims"]

if __name__ == "__main__":
    claims()
