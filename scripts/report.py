"""Compare finished agent runs: a datasets x methods table of mean ± std over seeds, and learning curves.

    python scripts/report.py runs/sweep                     # every run under the folder
    python scripts/report.py runs/a runs/b --out report/    # particular runs; files into report/
    python scripts/report.py runs --ddof 1 --decimals 2     # sample std, more digits

Reads each run folder's results.json, config.yaml and metrics.jsonl (any folder holding a
results.json from scripts/train_agent.py counts). Prints the markdown table; with --out (default
<first folder>/report) writes table.md, table.csv and one PNG per dataset (evaluation score and
training loss against the step, mean over seeds with a ± std band). The table's columns are "last"
(final evaluation) and "best" (best evaluation) per method, as CORL reports; see agents/report.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

from agents.report import make_report


@dataclass(frozen=True)
class ReportArgs:
    paths: tyro.conf.Positional[tuple[str, ...]] = ("runs",)
    """run folders, or folders holding run folders"""
    out: str = ""
    """where table.md, table.csv and the PNGs go (default: <first path>/report); 'none' writes nothing"""
    ddof: int = 0
    """std over seeds: 0 population (CORL, numpy's default), 1 sample"""
    decimals: int = 1
    plots: bool = True
    """learning-curve PNGs (needs matplotlib: pip install -e '.[plots]')"""


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(ReportArgs, args=argv, description=__doc__)
    out = None if args.out == "none" else Path(args.out or Path(args.paths[0]) / "report")
    try:
        report = make_report(args.paths, out, ddof=args.ddof, plots=args.plots, decimals=args.decimals)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.markdown)
    for warning in report.warnings:
        print(f"note: {warning}")
    if not report.records:
        print(f"error: no finished agent runs (folders with results.json) under {', '.join(args.paths)}", file=sys.stderr)
        return 1
    if report.files:
        print("written: " + ", ".join(str(p) for p in [*report.files, *(report.plots or [])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
