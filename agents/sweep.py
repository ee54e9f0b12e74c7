"""A grid of agent runs: plan it (every run's config checked before anything starts), run it in
parallel subprocesses, skip what is finished, resume what was cut short.

Grid: backbones x gradient modes x datasets x seeds, plus train_agent flags shared by every run.
Gradient modes apply to the backbones that have them: a combination a backbone does not support
(the transformer with dsf, say) is SKIPPED and listed, not an error, so `--backbones transformer gru
--gradients bptt dsf` runs transformer, gru and gru-dsf. It is an error (before anything starts) when
a backbone or gradient name is unknown, when a backbone is left with no run at all, or when the
shared flags do not parse for some run.

Runs: <out>/<dataset>-<backbone>-<gradient>-s<seed>/ (train_agent's default name, so the folder
says what it is), each `python scripts/train_agent.py ... --run-name NAME --runs-dir <out>` with
its output in <out>/logs/NAME.log. A run is finished when its results.json exists (skipped when the
sweep runs again); one with checkpoints/last.pt but no results.json is continued with --resume; a
folder with neither (a run that died before its first checkpoint) is started again from scratch.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Callable, Literal

from tqdm import tqdm

from agents.config import AgentConfig, parse_args
from agents.report import make_report
from envs.minari_ids import DEFAULT_DATASET_ID
from sequence_models.backbone_configs import BACKBONE_CONFIGS
from sequence_models.gradient_modes import GRADIENT_MODES
from sequence_models.training.config import ConfigError, flat_fields, to_plain

REPO = Path(__file__).resolve().parents[1]
SET_BY_SWEEP = ("--seed", "--dataset", "--run-name", "--runs-dir", "--resume", "--no-resume", "--backbone.gradient")
# fields that may differ between a finished run and the plan without making it another experiment
NOT_THE_EXPERIMENT = {"run_name", "runs_dir", "resume", "progress", "cpu_threads", "device", "dist_timeout_s",
                      "wandb", "wandb_project", "wandb_entity", "wandb_group", "wandb_tags", "eval_video"}


class SweepError(ValueError):
    """The grid or its flags are wrong; raised before any run starts."""


@dataclass(frozen=True)
class PlannedRun:
    name: str
    dataset: str
    backbone: str
    gradient: str
    seed: int
    args: tuple[str, ...]  # train_agent's flags, without --run-name/--runs-dir/--resume/--cpu-threads
    config: AgentConfig


def _check_names(backbones, gradients) -> None:
    problems = []
    for name in backbones:
        if name not in BACKBONE_CONFIGS:
            close = difflib.get_close_matches(name, BACKBONE_CONFIGS, n=1)
            problems.append(f"unknown backbone {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    for mode in gradients:
        if mode not in GRADIENT_MODES:
            close = difflib.get_close_matches(mode, GRADIENT_MODES, n=1)
            problems.append(f"unknown gradient mode {mode!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if problems:
        raise SweepError("; ".join(problems) + f". Backbones: {', '.join(BACKBONE_CONFIGS)}; gradient modes: "
                         f"{', '.join(GRADIENT_MODES)}")


def split_backbone_flags(args: tuple[str, ...] | list[str]) -> tuple[list[str], list[str]]:
    """(train_agent flags, --backbone.* flags with their values): tyro wants the latter after backbone:NAME."""
    top, backbone, current = [], [], None
    for token in args:
        if token.startswith("--"):
            current = backbone if token.startswith("--backbone.") else top
        (current if current is not None else top).append(token)
    return top, backbone


def plan(backbones, gradients, datasets, seeds, train_args=(), backbone_args: dict[str, list[str]] | None = None
         ) -> tuple[list[PlannedRun], list[str]]:
    """(the runs, notes on skipped combinations). Every run's flags are parsed here: SweepError if any fail."""
    backbone_args = backbone_args or {}
    if not (backbones and gradients and datasets and seeds):
        raise SweepError("give at least one backbone, gradient mode, dataset and seed")
    _check_names(backbones, gradients)
    unknown = set(backbone_args) - set(backbones)
    if unknown:
        raise SweepError(f"--backbone-args for {sorted(unknown)}, which the sweep does not run (backbones: {list(backbones)})")
    for token in train_args:
        if token.startswith("backbone:"):
            raise SweepError(f"{token!r} in the train_agent flags: the sweep picks the backbone (--backbones)")
        if token.split("=")[0] in SET_BY_SWEEP:
            raise SweepError(f"{token} in the train_agent flags: the sweep sets it (use --seeds, --datasets, --out, --gradients)")
    top, shared_backbone = split_backbone_flags(train_args)
    runs, notes = [], []
    for backbone in backbones:
        modes = [g for g in gradients if g in BACKBONE_CONFIGS[backbone].gradient_modes]
        for g in gradients:
            if g not in modes:
                notes.append(f"skipped {backbone} x {g}: {backbone} supports only {list(BACKBONE_CONFIGS[backbone].gradient_modes)}")
        if not modes:
            raise SweepError(f"backbone {backbone!r} supports none of the gradient modes {list(gradients)} "
                             f"(it has {list(BACKBONE_CONFIGS[backbone].gradient_modes)}): it would not run at all")
        for gradient in modes:
            for dataset in datasets:
                for seed in seeds:
                    args = (*top, "--dataset", dataset, "--seed", str(seed), f"backbone:{backbone}",
                            "--backbone.gradient", gradient, *shared_backbone, *backbone_args.get(backbone, ()))
                    errors = StringIO()
                    try:
                        with redirect_stderr(errors):
                            config = parse_args(list(args))
                    except ConfigError as e:
                        raise SweepError(f"{backbone} x {gradient} x {dataset} x seed {seed}: the train_agent flags "
                                         f"{' '.join(args)} do not fit: {e}") from None
                    except SystemExit as e:
                        detail = " ".join(str(e if e.code not in (None, 2) else errors.getvalue()).split())[-600:]
                        raise SweepError(f"{backbone} x {gradient} x {dataset} x seed {seed}: the train_agent flags "
                                         f"{' '.join(args)} do not parse: {detail}") from None
                    runs.append(PlannedRun(config.name, dataset, backbone, gradient, seed, tuple(args), config))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise SweepError("two runs would share a folder: give distinct datasets and seeds")
    return runs, notes


def run_state(run: PlannedRun, out: Path) -> str:
    """finished (results.json), resumable (checkpoints/last.pt), stale (a folder with neither) or new."""
    folder = out / run.name
    if (folder / "results.json").is_file():
        return "finished"
    if (folder / "checkpoints" / "last.pt").is_file():
        return "resumable"
    return "stale" if folder.exists() else "new"


def config_differences(run: PlannedRun, out: Path) -> list[str]:
    """Fields of the finished run's config.yaml that differ from the plan (it is then another experiment)."""
    import yaml

    path = out / run.name / "config.yaml"
    if not path.is_file():
        return []
    saved = flat_fields((yaml.safe_load(path.read_text()) or {}).get("config", {}))
    planned = flat_fields(to_plain(run.config))
    return [f"{k}: {saved.get(k)!r} there, {v!r} now" for k, v in planned.items()
            if k not in NOT_THE_EXPERIMENT and saved.get(k) != v]


def command(run: PlannedRun, out: Path, threads: int, device: str | None, resume: bool) -> list[str]:
    split = run.args.index(f"backbone:{run.backbone}")
    top, backbone = list(run.args[:split]), list(run.args[split:])
    extra = ["--run-name", run.name, "--runs-dir", str(out), "--no-progress", "--cpu-threads", str(threads)]
    extra += ["--device", device] if device else []
    extra += ["--resume"] if resume else []
    return [sys.executable, str(REPO / "scripts" / "train_agent.py"), *top, *extra, *backbone]


@dataclass
class Outcome:
    run: PlannedRun
    returncode: int
    seconds: float
    log: Path


def subprocess_env(threads: int) -> dict[str, str]:
    """The environment of a run's process: its thread count, this checkout importable."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    env.pop("WORLD_SIZE", None)  # a sweep started under torchrun must not make its runs think they are ranks
    return env


def launch(runs: list[PlannedRun], out: Path, jobs: int, threads: int, devices: tuple[str, ...] = (),
           on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run each (not finished) run as a subprocess, at most `jobs` at once; job slot i uses devices[i % len]."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    slots = list(range(jobs))
    lock = threading.Lock()
    env = subprocess_env(threads)

    def one(run: PlannedRun) -> Outcome:
        with lock:
            slot = slots.pop()
        try:
            state = run_state(run, out)
            if state == "stale":
                shutil.rmtree(out / run.name)
            device = devices[slot % len(devices)] if devices else None
            log = out / "logs" / f"{run.name}.log"
            t0 = time.time()
            with open(log, "a") as f:
                f.write(f"$ {' '.join(command(run, out, threads, device, state == 'resumable'))}\n")
                f.flush()
                code = subprocess.run(command(run, out, threads, device, state == "resumable"), stdout=f,
                                      stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
            outcome = Outcome(run, code, time.time() - t0, log)
        finally:
            with lock:
                slots.append(slot)
        if on_done:
            on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, runs))


def default_jobs() -> int:
    """One run per two cores (each run's evaluation and data work wants a second one)."""
    return max(1, (os.cpu_count() or 1) // 2)


@dataclass(frozen=True)
class SweepArgs:
    backbones: tuple[str, ...] = ("mingru", "transformer")
    """backbone names from the registry: transformer, mingru, minlstm, lru, gru, lstm, rnn, mamba, s4d"""
    gradients: tuple[str, ...] = ("bptt",)
    """gradient modes (bptt, dsf, truncated); combinations a backbone lacks are skipped"""
    datasets: tuple[str, ...] = (DEFAULT_DATASET_ID,)
    """Minari dataset ids (builtin/... are made locally)"""
    seeds: tuple[int, ...] = (0, 1, 2)
    out: str = "runs/sweep"
    """the sweep's folder: one sub-folder per run, logs/, report/"""
    jobs: int = 0
    """runs at once (0: one per two CPU cores)"""
    threads: int = 0
    """torch threads per run (0: CPU cores / jobs)"""
    devices: tuple[str, ...] = ()
    """devices handed to the job slots in turn (e.g. cuda:0 cuda:1); empty: each run's --device"""
    backbone_args: tuple[str, ...] = ()
    """flags for one backbone only, as NAME:FLAGS, e.g. 'transformer:--backbone.n-heads 2'"""
    ddof: int = 0
    """std over seeds: 0 population (CORL, numpy's default), 1 sample"""
    plots: bool = True
    """learning-curve PNGs (needs matplotlib: pip install -e '.[plots]')"""
    dry_run: bool = False
    """print the plan and what would run, start nothing"""
    launcher: Literal["local", "slurm", "submitit-local"] = "local"
    """local: subprocesses here (--jobs at once); slurm: one SLURM job per run through submitit
    (pip install -e '.[slurm]'), requeued on preemption and resumed from last.pt; submitit-local: those
    jobs as local processes (to try the SLURM path without a cluster)"""
    slurm_partition: str = ""
    """SLURM partition (default: the cluster's)"""
    slurm_gpus_per_run: int = 0
    """GPUs per job (0: a CPU job)"""
    slurm_cpus_per_run: int = 2
    """CPUs per job (also the run's torch threads)"""
    slurm_time_min: int = 240
    """time limit per job, minutes; at the limit the run writes last.pt and the job is requeued"""
    slurm_mem_gb: float = 0.0
    """memory per job (0: the partition's default)"""


def run_sweep(args: SweepArgs, train_args: list[str]) -> int:
    """Plan, report what is done, run the rest, tabulate; the exit code (2: the plan is wrong, 1: a run failed)."""
    out = Path(args.out)
    try:
        per_backbone: dict[str, list[str]] = {}
        for item in args.backbone_args:
            name, sep, flags = item.partition(":")
            if not sep:
                raise SweepError(f"--backbone-args {item!r}: write NAME:FLAGS, e.g. 'transformer:--backbone.n-heads 2'")
            per_backbone.setdefault(name.strip(), []).extend(flags.split())
        runs, notes = plan(args.backbones, args.gradients, args.datasets, args.seeds, tuple(train_args), per_backbone)
        if args.launcher != "local" and importlib.util.find_spec("submitit") is None:
            raise SweepError(f"--launcher {args.launcher} needs submitit: pip install -e '.[slurm]'")
        if min(args.slurm_gpus_per_run, args.slurm_cpus_per_run - 1, args.slurm_time_min - 1, args.slurm_mem_gb) < 0:
            raise SweepError("--slurm-gpus-per-run and --slurm-mem-gb must be >= 0, --slurm-cpus-per-run and "
                             "--slurm-time-min >= 1")
    except SweepError as e:
        print(f"error: {e}\nnothing was started.", file=sys.stderr)
        return 2

    for note in notes:
        print(note)
    states = {r.name: run_state(r, out) for r in runs}
    todo = [r for r in runs if states[r.name] != "finished"]
    counts = {s: sum(v == s for v in states.values()) for s in ("finished", "resumable", "stale", "new")}
    print(f"{len(runs)} runs in {out}: {counts['finished']} finished (skipped), {counts['resumable']} to resume, "
          f"{counts['new'] + counts['stale']} to start")
    for r in runs:
        if states[r.name] == "finished" and (diff := config_differences(r, out)):
            print(f"warning: finished run {r.name} was trained with other settings ({'; '.join(diff[:3])}); "
                  "delete its folder to run it again with these")
    if args.dry_run:
        for r in runs:
            print(f"  [{states[r.name]}] {r.name}: {' '.join(r.args)}")
        return 0

    jobs = args.jobs or default_jobs()
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    failed = []
    if todo:
        progress = tqdm(total=len(todo), desc="sweep", unit="run", dynamic_ncols=True)

        def done(outcome) -> None:
            if outcome.returncode != 0:
                failed.append(outcome)
                progress.write(f"FAILED {outcome.run.name} (exit {outcome.returncode}); see {outcome.log}")
            else:
                progress.write(f"done   {outcome.run.name} in {outcome.seconds:.0f} s")
            progress.update(1)

        try:
            if args.launcher == "local":
                launch(todo, out, min(jobs, len(todo)), threads, args.devices, on_done=done)
            else:
                from agents.slurm_jobs import SlurmOptions, launch_jobs

                options = SlurmOptions(args.slurm_partition, args.slurm_gpus_per_run, args.slurm_cpus_per_run,
                                       args.slurm_time_min, args.slurm_mem_gb)
                launch_jobs(todo, out, args.launcher, options, on_done=done)
        finally:
            progress.close()

    report = make_report([out / r.name for r in runs if (out / r.name / "results.json").is_file()],
                         out / "report", ddof=args.ddof, plots=args.plots)
    print("\n" + report.markdown)
    for warning in report.warnings:
        print(f"note: {warning}")
    print("written: " + ", ".join(str(p) for p in [*report.files, *(report.plots or [])]))
    if failed:
        print(f"{len(failed)} run(s) failed: " + ", ".join(f"{o.run.name} ({o.log})" for o in failed)
              + ". Run the sweep again to retry them.", file=sys.stderr)
        return 1
    return 0
