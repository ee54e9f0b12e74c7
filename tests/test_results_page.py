"""report/index.html: one self-contained page per sweep with the table, the learning curves embedded
and links to the runs' videos."""

from __future__ import annotations

import base64
import re

import pytest

from agents.report import make_report
from agents.results_page import markdown_table_to_html
from tests.test_sweep import fake_run


def test_results_page_holds_the_table_the_plots_and_the_video_links(tmp_path):
    pytest.importorskip("matplotlib")
    root = tmp_path / "sweep"
    run = fake_run(root, "mujoco/hopper/medium-v0", "mingru", "bptt", 0, 10.0, 20.0, [(10, 5.0), (20, 10.0)])
    fake_run(root, "mujoco/hopper/medium-v0", "gru", "dsf", 0, 30.0, 40.0, [(10, 25.0), (20, 30.0)])
    (run / "videos").mkdir()
    (run / "videos" / "step20-target3600-ep0-return10.0-norm1.0.mp4").write_bytes(b"\0")
    report = make_report([root], root / "report")
    page = root / "report" / "index.html"
    assert page in report.files
    text = page.read_text()
    assert "<table>" in text and "mingru" in text and "gru-dsf" in text
    images = re.findall(r"src='data:image/png;base64,([^']+)'", text)
    assert len(images) == len(report.plots) == 1
    assert base64.b64decode(images[0]) == report.plots[0].read_bytes()  # embedded: the page stands alone
    assert "href='../" + run.name + "/videos/step20-target3600-ep0-return10.0-norm1.0.mp4'" in text


def test_markdown_tables_become_html_rows_without_the_separator():
    out = markdown_table_to_html("| a | b |\n|---|:-:|\n| 1 | 2 |\n\nnote *")
    assert out.count("<tr>") == 2 and "<th>a</th>" in out and "<td>2</td>" in out and "<p>note *</p>" in out
