"""One self-contained HTML results page per sweep (report/index.html): the table, the learning-curve
PNGs embedded as data (the page can be mailed or attached on its own) and, per run, links to its
rollout videos (runs/NAME/videos/, linked relative to the page: they stay beside the runs).

Why HTML and not markdown: markdown would need the PNGs as separate files next to it; one HTML file
with base64 images opens anywhere, and a browser plays the MP4/GIF links in place.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".gif")


def markdown_table_to_html(markdown: str) -> str:
    """The report's pipe tables as HTML tables; other lines (the notes) as paragraphs."""
    out, rows = [], []

    def flush() -> None:
        if rows:
            head, *body = rows
            out.append("<table>\n<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>\n"
                       + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n" for r in body)
                       + "</table>")
            rows.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):  # not the |---|---| separator
                rows.append(cells)
            continue
        flush()
        if stripped:
            out.append(f"<p>{html.escape(stripped)}</p>")
    flush()
    return "\n".join(out)


def run_videos(run_dir: Path) -> list[Path]:
    folder = run_dir / "videos"
    return sorted(p for p in folder.iterdir() if p.suffix in VIDEO_SUFFIXES) if folder.is_dir() else []


def write_results_page(out_dir: Path, markdown: str, plots: list[Path], run_dirs: list[Path],
                       title: str = "Results") -> Path:
    """out_dir/index.html; returns its path."""
    parts = [f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", "<h2>Table</h2>", markdown_table_to_html(markdown)]
    if plots:
        parts.append("<h2>Learning curves</h2>")
        for plot in plots:
            data = base64.b64encode(Path(plot).read_bytes()).decode()
            parts.append(f"<h3>{html.escape(Path(plot).stem)}</h3>"
                         f"<img alt='{html.escape(Path(plot).name)}' src='data:image/png;base64,{data}'>")
    with_videos = [(r, run_videos(r)) for r in run_dirs]
    with_videos = [(r, v) for r, v in with_videos if v]
    if with_videos:
        parts.append("<h2>Rollout videos</h2>")
        for run_dir, videos in with_videos:
            links = "".join(f"<li><a href='{html.escape(os.path.relpath(v, out_dir))}'>{html.escape(v.name)}</a></li>"
                            for v in videos)
            parts.append(f"<h3>{html.escape(run_dir.name)}</h3><ul>{links}</ul>")
    parts.append("</body></html>\n")
    path = out_dir / "index.html"
    path.write_text("\n".join(parts))
    return path
