"""Agent runs on disk -> a paper-style comparison table (markdown, CSV) and learning-curve plots.

One piece of code for `scripts/report.py` (any run folders) and `scripts/sweep.py` (its grid); the
markdown, CSV and plot files are written by sequence_models/benchmarks/tables.py, as the benchmarks' are.

Table. Rows are datasets, columns methods (the backbone, plus "-gradient" when it is not bptt),
as in the minGRU paper's Table 3; each method has a "last" and a "best" column, as CORL reports:

    last   the score of the final evaluation
    best   the best score over the run's evaluations (every --eval-every steps, and the final one)

The score is the mean normalized return (D4RL scale, 0 = random, 100 = expert) over the evaluation
episodes at the run's FIRST target (the high one, the target best.pt follows); runs without a
reference score report the mean raw return instead, and their cells are marked "*". A cell is
mean ± std over the seeds of that dataset and method; std is the population std (ddof=0, numpy's
default, as CORL computes it) unless ddof=1 is asked for. The "average" row is the mean over
datasets of the cells' normalized means (no ±: seeds are not paired across datasets); raw returns
never enter it.

Seeds of one protocol. Runs are seeds of one cell only when everything that decides the result is
the same: the config.yaml of each run, less its seed and the settings of how it ran (device,
threads, logging, names; RUN_ONLY), and whether it has a reference score. Runs of one method under
different protocols (another eval mode, target, step count, model size, ...) get their own columns,
labelled with what differs, e.g. "mingru [eval_mode=window]". The seed comes from the config; a run
whose protocol and seed another run already has (a `NAME-2` re-run) is left out, with a warning.

Curves. For each dataset, the evaluation score against the optimizer step and the training loss,
one line per method: the mean over seeds, shaded ± std, on the steps every seed has.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from agents.results_page import write_results_page
from sequence_models.benchmarks import tables
from sequence_models.training.config import flat_fields


RUN_ONLY = frozenset({
    "seed", "run_name", "runs_dir", "resume", "progress", "device", "cpu_threads", "compile", "scan_backend",
    "log_every", "checkpoint_every", "dist_timeout_s", "preset", "download", "allow_foreign_env",
    "eval_vectorization", "eval_video", "wandb", "wandb_project", "wandb_entity", "wandb_group", "wandb_tags",
    "dataset"})
"""config fields that say how a run ran, not what it computed (the dataset is a key of its own)."""


def protocol_of(config: dict, normalized: bool) -> tuple[tuple[str, str], ...]:
    """What decides a run's result, as sorted (field, value) pairs; runs with equal protocols are seeds."""
    flat = flat_fields(config)
    backbone = flat.pop("backbone", None)  # one pair per backbone option, so a label names the one that differs
    if isinstance(backbone, dict):
        flat.update({f"backbone.{k}": v for k, v in backbone.items()})
    pairs = {k: json.dumps(v, sort_keys=True) for k, v in flat.items() if k not in RUN_ONLY}
    pairs["normalized"] = json.dumps(normalized)
    return tuple(sorted(pairs.items()))


@dataclass
class RunRecord:
    path: Path
    dataset: str
    backbone: str
    gradient: str
    seed: int
    last: float
    best: float
    normalized: bool  # False: raw returns (no reference score)
    steps: int
    target: str
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, eval score at the first target)
    loss: list[tuple[int, float]] = field(default_factory=list)  # (step, train/loss)
    protocol: tuple[tuple[str, str], ...] = ()
    label: str = ""  # the column: the method, plus what differs from its other protocols (label_protocols)

    @property
    def method(self) -> str:
        return method_label(self.backbone, self.gradient)

    @property
    def dataset_label(self) -> str:
        return dataset_label(self.dataset)


def method_label(backbone: str, gradient: str) -> str:
    return backbone if gradient == "bptt" else f"{backbone}-{gradient}"


def dataset_label(dataset: str) -> str:
    """mujoco/hopper/medium-v0 -> hopper-medium; builtin/inverteddoublependulum/mixed-v0 -> inverteddoublependulum-mixed."""
    parts = dataset.split("/")
    name = "-".join(parts[1:] if len(parts) > 2 else parts)
    return re.sub(r"-v\d+$", "", name)


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every folder at or under `paths` holding a results.json (a finished run), sorted."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        if (p / "results.json").is_file():
            found.add(p)
        found.update(r.parent for r in p.rglob("results.json"))
    return sorted(found)


def _read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash: skip it
            continue
    return rows


def read_run(run_dir: str | Path) -> RunRecord:
    """A finished agent run: its scores from results.json, seed from config.yaml, curves from metrics.jsonl."""
    import yaml

    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    config_file = run_dir / "config.yaml"
    config = (yaml.safe_load(config_file.read_text()) or {}).get("config", {}) if config_file.is_file() else {}
    final_score = results.get("final_score") or {}
    if not final_score:
        raise ValueError(f"{run_dir / 'results.json'} has no final_score: not an agent run (scripts/train_agent.py)")
    target = next(iter(final_score))
    normalized = bool(results.get("reference"))
    key = f"eval/{'normalized' if normalized else 'return'}@{target}"
    curve, loss = [], []
    for row in _read_metrics(run_dir / "metrics.jsonl"):
        if key in row:
            curve.append((int(row["step"]), float(row[key])))
        if "train/loss" in row:
            loss.append((int(row["step"]), float(row["train/loss"])))
    # a resumed run logs some steps twice: keep the last value of each step
    curve = sorted(dict(curve).items())
    loss = sorted(dict(loss).items())
    best = (results.get("best") or {}).get("score")
    last = float(final_score[target])
    return RunRecord(
        path=run_dir, dataset=results.get("dataset", config.get("dataset", "?")), backbone=results["backbone"],
        gradient=results.get("gradient", "bptt"), seed=int((config.get("run") or config).get("seed", -1)), last=last,
        best=float(best) if best is not None and math.isfinite(best) else last, normalized=normalized,
        steps=int(results.get("steps", 0)), target=target, curve=curve, loss=loss,
        protocol=protocol_of(config, normalized),
    )


def label_protocols(records: list[RunRecord]) -> None:
    """Each record's column label: its method, plus the fields that differ among that method's protocols."""
    by_method: dict[str, set] = defaultdict(set)
    for r in records:
        by_method[r.method].add(tuple(p for p in r.protocol if p[0] != "normalized"))
    for r in records:
        protocols = by_method[r.method]
        if len(protocols) == 1:  # one protocol (per dataset, with or without a reference): the method's name
            r.label = r.method
            continue
        fields = [dict(p) for p in protocols]
        mine = dict(r.protocol)
        # "normalized" follows the dataset (a reference score or none), so it is not a column's difference
        differ = sorted(k for k in set().union(*fields) - {"normalized"} if len({f.get(k) for f in fields}) > 1)
        r.label = f"{r.method} [{', '.join(f'{k}={json.loads(mine[k]) if k in mine else None}' for k in differ)}]"


def read_runs(paths: Iterable[str | Path]) -> tuple[list[RunRecord], list[str]]:
    """(records, warnings): runs that are not agent runs, and repeats of a (dataset, protocol, seed), are left out."""
    records, warnings, seen = [], [], {}
    for run_dir in find_run_dirs(paths):
        try:
            record = read_run(run_dir)
        except (ValueError, KeyError) as e:
            warnings.append(f"skipped {run_dir}: {e}")
            continue
        key = (record.dataset, record.method, record.protocol, record.seed)
        if key in seen:
            warnings.append(f"skipped {run_dir}: the same dataset, settings and seed as {seen[key]}")
            continue
        seen[key] = run_dir
        records.append(record)
    label_protocols(records)
    return records, warnings


@dataclass
class Cell:
    dataset: str
    method: str
    seeds: list[int]
    last: list[float]
    best: list[float]
    normalized: bool
    steps: list[int]
    ddof: int = 0

    def mean_std(self, values: list[float]) -> tuple[float, float]:
        std = float(np.std(values, ddof=self.ddof)) if len(values) > self.ddof else float("nan")
        return float(np.mean(values)), std

    @property
    def last_mean_std(self) -> tuple[float, float]:
        return self.mean_std(self.last)

    @property
    def best_mean_std(self) -> tuple[float, float]:
        return self.mean_std(self.best)


def aggregate(records: list[RunRecord], ddof: int = 0) -> dict[tuple[str, str], Cell]:
    """{(dataset label, method): Cell} over seeds."""
    cells: dict[tuple[str, str], Cell] = {}
    for r in sorted(records, key=lambda r: (r.dataset_label, r.label or r.method, r.seed)):
        key = (r.dataset_label, r.label or r.method)
        cell = cells.setdefault(key, Cell(key[0], key[1], [], [], [], r.normalized, [], ddof))
        cell.seeds.append(r.seed)
        cell.last.append(r.last)
        cell.best.append(r.best)
        cell.steps.append(r.steps)
        cell.normalized = cell.normalized and r.normalized
    return cells


def _order(cells: dict[tuple[str, str], Cell]) -> tuple[list[str], list[str]]:
    datasets = sorted({d for d, _ in cells})
    methods = sorted({m for _, m in cells})
    return datasets, methods


def markdown_table(cells: dict[tuple[str, str], Cell], decimals: int = 1) -> str:
    """The datasets x methods table ("last" and "best" per method, an "average" row) and its notes."""
    if not cells:
        return "no finished runs\n"
    datasets, methods = _order(cells)
    most = max(len(c.seeds) for c in cells.values())

    def fmt(cell: Cell | None, which: str) -> str:
        if cell is None:
            return "-"
        mean, std = getattr(cell, f"{which}_mean_std")
        text = f"{mean:.{decimals}f}" + (f" ± {std:.{decimals}f}" if math.isfinite(std) else "")
        if not cell.normalized:
            text += "*"
        if len(cell.seeds) != most:
            text += f" (n={len(cell.seeds)})"
        return text

    def avg(m: str, which: str) -> str:
        """The mean over datasets of normalized cells only: a raw return is on another scale."""
        means = [getattr(cells[(d, m)], f"{which}_mean_std")[0] for d in datasets
                 if (d, m) in cells and cells[(d, m)].normalized]
        if not means:
            return "-"
        return f"{np.mean(means):.{decimals}f}" + ("" if len(means) == len(datasets) else f" ({len(means)} of {len(datasets)})")

    columns = ["dataset"] + [f"{m} {which}" for m in methods for which in ("last", "best")]
    rows = [{"dataset": d, **{f"{m} {which}": fmt(cells.get((d, m)), which) for m in methods for which in ("last", "best")}}
            for d in datasets]
    if len(datasets) > 1:
        rows.append({"dataset": "average", **{f"{m} {which}": avg(m, which) for m in methods for which in ("last", "best")}})
    ddof = next(iter(cells.values())).ddof
    notes = [f"mean ± {'sample (ddof=1)' if ddof else 'population (ddof=0)'} std over {most} seed{'s' * (most != 1)}"
             " of the normalized score at the first target; last: final evaluation, best: best evaluation"]
    if any(not c.normalized for c in cells.values()):
        notes.append("*: raw return (the dataset has no reference score)")
    if len(datasets) > 1:
        notes.append("average: mean over datasets of the normalized means (raw returns left out)")
    return tables.markdown_table(rows, columns) + "\n\n" + "; ".join(notes) + ".\n"


CSV_FIELDS = ("dataset", "method", "n_seeds", "seeds", "last_mean", "last_std", "best_mean", "best_std",
              "unit", "steps", "last", "best")


def csv_table(cells: dict[tuple[str, str], Cell]) -> str:
    """One CSV row per (dataset, method) cell: mean and std of last and best, and every seed's value."""
    datasets, methods = _order(cells)
    rows = []
    for d in datasets:
        for m in methods:
            c = cells.get((d, m))
            if c is None:
                continue
            (lm, ls), (bm, bs) = c.last_mean_std, c.best_mean_std
            values = [d, m, len(c.seeds), " ".join(map(str, c.seeds)), lm, ls, bm, bs,
                      "normalized" if c.normalized else "return", " ".join(map(str, sorted(set(c.steps)))),
                      " ".join(f"{x:.6g}" for x in c.last), " ".join(f"{x:.6g}" for x in c.best)]
            rows.append(dict(zip(CSV_FIELDS, values)))
    return tables.csv_text(rows, CSV_FIELDS)


def mean_curve(curves: list[list[tuple[int, float]]], ddof: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps every curve has, mean, std) over the curves."""
    if not curves:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    common = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    values = np.array([[dict(c)[s] for s in common] for c in curves], dtype=np.float64).reshape(len(curves), len(common))
    std = values.std(axis=0, ddof=ddof) if len(curves) > ddof else np.full(len(common), np.nan)
    return np.asarray(common, dtype=np.int64), values.mean(axis=0), std


def write_plots(records: list[RunRecord], out_dir: str | Path, ddof: int = 0) -> list[Path] | None:
    """One PNG per dataset (evaluation score and training loss vs step); None when matplotlib is missing."""
    plt = tables.pyplot()
    if plt is None:
        return None
    out_dir = Path(out_dir)
    by_dataset: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_dataset[r.dataset_label][r.label or r.method].append(r)
    written = []
    for dataset, methods in sorted(by_dataset.items()):
        fig, (ax_score, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
        normalized = all(r.normalized for runs in methods.values() for r in runs)
        for method, runs in sorted(methods.items()):
            for ax, curves in ((ax_score, [r.curve for r in runs]), (ax_loss, [r.loss for r in runs])):
                steps, mean, std = mean_curve([c for c in curves if c], ddof)
                if not len(steps):
                    continue
                (line,) = ax.plot(steps, mean, marker="o" if len(steps) < 12 else None, label=f"{method} (n={len(runs)})")
                if len(runs) > 1:
                    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        target = next(iter(methods.values()))[0].target
        ax_score.set(title=f"{dataset}: evaluation at target {target}", xlabel="step",
                     ylabel="normalized score" if normalized else "return")
        ax_loss.set(title=f"{dataset}: training loss", xlabel="step", ylabel="action MSE", yscale="log")
        for ax in (ax_score, ax_loss):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        written.append(tables.save_figure(fig, out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', dataset)}.png"))
    return written


@dataclass
class Report:
    records: list[RunRecord]
    cells: dict[tuple[str, str], Cell]
    markdown: str
    csv: str
    warnings: list[str]
    files: list[Path]
    plots: list[Path] | None  # None: matplotlib is not installed


def make_report(run_paths: Iterable[str | Path], out_dir: str | Path | None = None, ddof: int = 0,
                plots: bool = True, decimals: int = 1) -> Report:
    """Read the runs, build the table; with out_dir, write table.md, table.csv, one PNG per dataset and
    index.html (the table, the PNGs embedded, links to the runs' videos: agents/results_page.py) there."""
    run_paths = list(run_paths)
    records, warnings = read_runs(run_paths)
    cells = aggregate(records, ddof)
    md, table_csv = markdown_table(cells, decimals), csv_table(cells)
    files: list[Path] = []
    written_plots: list[Path] | None = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(md)
        (out / "table.csv").write_text(table_csv)
        files = [out / "table.md", out / "table.csv"]
        if plots and records:
            written_plots = write_plots(records, out, ddof)
            if written_plots is None:
                warnings.append("matplotlib is not installed: no plots (pip install -e '.[plots]')")
        files.append(write_results_page(out, md, written_plots or [], [r.path for r in records],
                                        title=f"Results: {out.resolve().parent.name if out.name == 'report' else out.name}"))
    return Report(records, cells, md, table_csv, warnings, files, written_plots)
