"""sequence_models/benchmarks/tables.py: the one writer of the benchmark suites' and the agent report's tables."""

from __future__ import annotations

import csv
import io

from agents import report
from sequence_models.benchmarks import tables
from sequence_models.benchmarks.tables import Table, csv_text, markdown_table, ratio, target_row, write_tables


def test_markdown_floats_to_four_digits_other_cells_as_text():
    text = markdown_table([{"layer": "minGRU", "ms": 1.234567, "T": 512, "gap": ""}])
    assert text.splitlines() == ["| layer | ms | T | gap |", "|---|---|---|---|", "| minGRU | 1.235 | 512 |  |"]
    assert markdown_table([]) == "(no rows)"


def test_csv_round_trips_and_keeps_its_header_without_rows():
    rows = [{"a": 1, "b": 0.5}, {"a": 2, "b": ""}]
    assert list(csv.DictReader(io.StringIO(csv_text(rows)))) == [{"a": "1", "b": "0.5"}, {"a": "2", "b": ""}]
    assert csv_text([], ("a", "b")).strip() == "a,b"


def test_ratio_and_targets_keep_missing_values_missing():
    assert ratio(6, 3) == 2.0 and ratio("", 3) == ratio(6, "") == ratio(6, 0) == ""
    assert target_row("x", "", ">= 2", lambda v: v >= 2, "needs y")["status"] == "not measured (needs y)"
    assert target_row("x", 3.0, ">= 2", lambda v: v >= 2, "needs y")["status"] == "met"


def test_write_tables_files_and_plot_names(tmp_path):
    def plot(by_name, plt):
        fig, ax = plt.subplots()
        ax.plot([r["T"] for r in by_name["demo"]], [r["ms"] for r in by_name["demo"]])
        return {"line": fig}

    written = write_tables("suite", "header line", [Table("demo", "Demo", [{"T": 8, "ms": 1.0}])], tmp_path,
                           plot if tables.pyplot() is not None else None)
    assert (tmp_path / "demo.csv").read_text().splitlines() == ["T,ms", "8,1.0"]
    assert (tmp_path / "suite.md").read_text() == "header line\n\n### Demo\n\n| T | ms |\n|---|---|\n| 8 | 1 |\n"
    if tables.pyplot() is not None:
        assert (tmp_path / "suite_line.png") in written


def test_the_agent_report_writes_through_the_same_writer():
    assert report.tables is tables
