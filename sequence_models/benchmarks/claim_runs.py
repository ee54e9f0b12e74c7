"""What every claim of the claims suite shares: a run's learning curve, its convergence check, the files.

A claim is only a result when its runs converged, so every run's evaluation curve is read back from
its metrics.jsonl and checked: "flat" means the curve moves by at most `tolerance` over the last
quarter of the run's steps (max - min of the evaluations at step >= 3/4 of the last one). A budget
that stops on a slope is reported as not converged rather than silently taken as the answer.

A claim's run that already finished under the same settings (runs_dir/NAME/results.json and a
config.yaml equal in every field that decides the result) is read back instead of trained again
(`train_once`), so an interrupted suite continues where it stopped and one claim can be re-run alone.
A claim trains its runs through `train_many`: `workers` at once, each in its own process.

`write_claims(results, out_dir)` writes claims.md (the claims table, then each claim's runs),
claims.csv, claims_<claim>_runs.csv, and claims_<claim>.png with every run's curve
(sequence_models/benchmarks/tables.py).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..training.config import ConfigError, flat_fields, from_plain, override, to_plain
from ..training.run_folder import numbered_names
from .tables import Table, write_tables

CLAIM_COLUMNS = ("claim", "paper", "ours", "verdict", "converged")


@dataclass
class Curve:
    """One run's evaluation metric against its step."""

    label: str
    metric: str
    steps: list[int]
    values: list[float]

    @property
    def last_quarter_change(self) -> float:
        """max - min of the evaluations over the last quarter of the steps (nan without any)."""
        if not self.steps:
            return math.nan
        tail = [v for s, v in zip(self.steps, self.values) if s >= 0.75 * self.steps[-1]]
        return max(tail) - min(tail)

    def points_in_last_quarter(self) -> int:
        return sum(s >= 0.75 * self.steps[-1] for s in self.steps) if self.steps else 0


def finished_run(run_dir: Path, config: Any) -> dict[str, Any] | None:
    """results.json of run_dir when it finished with the same result-deciding settings as config, else None.

    The saved config is read back through its class first, so a field added since (at its default) is
    no difference; a field since removed or an unreadable file is."""
    from ..training.loop import RESUMABLE_RUN_FIELDS

    results, config_yaml = run_dir / "results.json", run_dir / "config.yaml"
    if not (results.is_file() and config_yaml.is_file()):
        return None
    try:
        plain = (yaml.safe_load(config_yaml.read_text()) or {}).get("config")
        saved = flat_fields(to_plain(from_plain(type(config), plain)))
    except (ConfigError, yaml.YAMLError, AttributeError):
        return None
    now = flat_fields(to_plain(config))
    if any(saved.get(k) != now.get(k) for k in set(saved) | set(now) if k not in RESUMABLE_RUN_FIELDS):
        return None
    done = json.loads(results.read_text())
    return None if "error" in done else done  # a final evaluation that failed is run again


def train_once(run: Callable[..., dict[str, Any]], config: Any, runs_dir: Path, name: str) -> dict[str, Any]:
    """run(config) in runs_dir/name, quietly; a finished run with the same settings is read back instead.

    A run folder that exists with other settings is kept, so the new run goes to name-2 (name-3, ...: the
    run folder's rule); those numbered folders are looked in as well, so it is read back the next time."""
    config = override(config, runs_dir=str(runs_dir), run_name=name, progress=False)
    for candidate in numbered_names(name):  # name, then name-2, ... while those folders exist
        folder = Path(runs_dir) / candidate
        if candidate != name and not folder.is_dir():
            break
        done = finished_run(folder, config)
        if done is not None:
            print(f"  {name}: finished earlier with these settings, read from {folder}")
            return done
    return run(config, quiet=True)


Job = tuple[str, Callable[..., dict[str, Any]], Any]
"""(run name, the task's run function, its config)"""


def train_many(jobs: list[Job], runs_dir: Path, workers: int = 1) -> dict[str, dict[str, Any]]:
    """train_once every job, `workers` at once in their own processes; results by run name, one line per run."""
    results: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()

    def done(name: str, result: dict[str, Any]) -> None:
        results[name] = result
        print(f"  [{len(results)}/{len(jobs)}] {name} ({time.perf_counter() - start:.0f} s)", flush=True)

    if workers <= 1 or len(jobs) <= 1:
        for name, run, config in jobs:
            done(name, train_once(run, config, runs_dir, name))
        return results
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked torch threads
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(train_once, run, config, runs_dir, name): name for name, run, config in jobs}
        for future in as_completed(futures):
            done(futures[future], future.result())
    return results


def read_curve(run_dir: str | Path, metric: str, label: str) -> Curve:
    """The metric's values from run_dir/metrics.jsonl, in step order."""
    steps, values = [], []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if metric in record:
            steps.append(int(record["step"]))
            values.append(float(record[metric]))
    order = sorted(range(len(steps)), key=steps.__getitem__)
    return Curve(label, metric, [steps[i] for i in order], [values[i] for i in order])


def is_flat(curve: Curve, tolerance: float) -> bool:
    """Converged: at least two evaluations in the last quarter, moving by at most tolerance."""
    return curve.points_in_last_quarter() >= 2 and curve.last_quarter_change <= tolerance


@dataclass
class ClaimResult:
    """One claim's rows of the claims table, the table of its runs, and its runs' curves."""

    name: str  # file stem part: claims_<name>_runs.csv, claims_<name>.png
    title: str
    claims: list[dict] = field(default_factory=list)  # CLAIM_COLUMNS
    runs: list[dict] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    tolerance: float = 0.0
    run_seconds: float = 0.0  # the runs' summed wall time

    def run_row(self, label: str, curve: Curve, run: dict[str, Any], **cells) -> dict:
        """A row of the runs table: the run's label, its cells, its convergence, its wall time (the run's own, also
        when it was read back) and the code it was trained with (results.json's "code")."""
        row = {"run": label, **cells, "last-quarter change": curve.last_quarter_change,
               "flat (last quarter)": "yes" if is_flat(curve, self.tolerance) else "no",
               "run s": round(run["wall_time_s"]), "code": run.get("code", "not recorded")}
        self.runs.append(row)
        self.curves.append(curve)
        self.run_seconds += run["wall_time_s"]
        return row

    def cost(self, workers: int) -> str:
        """What the claim's runs cost to train: their summed wall time, and about that over `workers`."""
        return (f"{self.name}: {len(self.runs)} runs, {self.run_seconds / 60:.0f} min of run time in all (each run's "
                f"own wall time, read-back runs included), about {self.run_seconds / workers / 60:.0f} min at "
                f"--jobs {workers}")

    def converged(self, labels: list[str] | None = None) -> str:
        """"yes" when every (named) run's curve is flat over its last quarter, else the ones that are not."""
        curves = [c for c in self.curves if labels is None or c.label in labels]
        moving = [c.label for c in curves if not is_flat(c, self.tolerance)]
        return "yes" if not moving else "no: " + ", ".join(moving)

    def claim(self, claim: str, paper: str, ours: str, holds: bool | None, labels: list[str] | None = None) -> None:
        """A row of the claims table; holds None: a measurement the paper has no claim about."""
        verdict = "reported" if holds is None else ("holds" if holds else "does not hold")
        self.claims.append({"claim": claim, "paper": paper, "ours": ours, "verdict": verdict,
                            "converged": self.converged(labels)})


def all_hold(results: list[ClaimResult]) -> bool:
    return all(row["verdict"] != "does not hold" for r in results for row in r.claims)


def _plot(results: list[ClaimResult]):
    def plot(_tables, plt) -> dict:
        figures = {}
        for result in results:
            fig, ax = plt.subplots(figsize=(8, 5))
            for curve in result.curves:
                ax.plot(curve.steps, curve.values, marker=".", label=curve.label)
            if result.curves:
                ax.axvline(0.75 * max(c.steps[-1] for c in result.curves if c.steps), color="grey", ls=":", lw=1)
                ax.set_ylabel(result.curves[0].metric)
            ax.set_xlabel("step (dotted: start of the last quarter)")
            ax.set_title(result.title, fontsize=8)
            ax.legend(fontsize=7)
            figures[result.name] = fig
        return figures
    return plot


def write_claims(results: list[ClaimResult], out_dir: str | Path, header: str) -> list[Path]:
    """claims.md, claims.csv, claims_<name>_runs.csv and claims_<name>.png under out_dir."""
    tables = [Table("claims", "The papers' claims at CPU scale", [row for r in results for row in r.claims])]
    tables += [Table(f"claims_{r.name}_runs", f"{r.title}: runs", r.runs) for r in results]
    return write_tables("claims", header, tables, Path(out_dir), _plot(results))
