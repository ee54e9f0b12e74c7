"""Result tables and their files: markdown, CSV and PNG plots, one writer for every benchmark and report.

A table is a list of rows, each a dict of column -> cell; a cell is a number, a string, or "" for a
value that was not measured. Ratios of cells keep "" when a side is missing, so a partial run still
writes every column.

`write_tables(stem, header, tables, out_dir, plot)` prints each table as markdown and writes
<table>.csv per table, <stem>.md with all of them under the header, and plot's figures as
<stem>_<name>.png when matplotlib is installed (`pip install -e ".[plots]"`); without it, a hint.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLOTS_HINT = '(no plots: matplotlib is not installed; pip install -e ".[plots]")'


@dataclass
class Table:
    name: str  # file stem
    title: str
    rows: list[dict] = field(default_factory=list)


def ratio(numerator, denominator):
    """numerator / denominator, or "" when either is missing or the denominator is zero."""
    if numerator in ("", None) or denominator in ("", None) or float(denominator) == 0:
        return ""
    return float(numerator) / float(denominator)


def target_row(text: str, measured, required: str, holds: Callable[[float], bool], missing: str) -> dict:
    """One row of a targets table: met / not met, or what a run needs to measure it."""
    status = f"not measured ({missing})" if measured == "" else ("met" if holds(measured) else "not met")
    return {"target": text, "required": required, "measured": measured, "status": status}


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Floats to 4 significant digits, every other cell as str()."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(rows: list[dict], columns: list[str] | tuple[str, ...] | None = None) -> str:
    """The rows as CSV (a header only when there are none); columns default to the first row's keys."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns or (rows[0] if rows else [])))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv(rows: list[dict], path: Path, columns: list[str] | tuple[str, ...] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(rows, columns))
    return path


def markdown_sections(header: str, tables: list[Table]) -> str:
    """The header, then every table under its title: what <stem>.md holds."""
    return "\n\n".join([header] + [f"### {t.title}\n\n{markdown_table(t.rows)}" for t in tables]) + "\n"


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def series(rows: list[dict], key_fields: list[str], x: str, y: str) -> dict[tuple, tuple[list, list]]:
    """{key: ([x...], [y...])} sorted by x, skipping empty y: the lines of a plot, one per key."""
    out: dict = {}
    for r in sorted(rows, key=lambda r: r[x]):
        if r[y] in ("", None):
            continue
        xs, ys = out.setdefault(tuple(r[f] for f in key_fields), ([], []))
        xs.append(r[x])
        ys.append(r[y])
    return out


# plot(tables by name, pyplot) -> {figure name: figure}
Plot = Callable[[dict[str, list[dict]], Any], dict[str, Any]]


def write_plots(stem: str, tables: list[Table], out_dir: Path, plot: Plot) -> list[Path]:
    """<stem>_<name>.png for each figure plot draws; none (and a hint) when matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        print(PLOTS_HINT)
        return []
    figures = plot({t.name: t.rows for t in tables}, plt)
    return [save_figure(fig, out_dir / f"{stem}_{name}.png") for name, fig in figures.items()]


def write_tables(stem: str, header: str, tables: list[Table], out_dir: Path, plot: Plot | None = None) -> list[Path]:
    """Print the tables; write <name>.csv per table, <stem>.md with all of them, and plot's PNGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        print(f"\n### {table.title}\n\n{markdown_table(table.rows)}")
        written.append(write_csv(table.rows, out_dir / f"{table.name}.csv"))
    (out_dir / f"{stem}.md").write_text(markdown_sections(header, tables))
    written.append(out_dir / f"{stem}.md")
    if plot is not None:
        written += write_plots(stem, tables, out_dir, plot)
    print("\nwrote " + ", ".join(str(p) for p in written))
    return written
