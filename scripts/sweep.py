"""Run a grid of agent runs (backbones x gradient modes x datasets x seeds) and tabulate it.

    python scripts/sweep.py --backbones mingru transformer --seeds 0 1 2 -- --steps 2000 --eval-every 500
    python scripts/sweep.py --backbones gru lstm --gradients bptt dsf truncated --jobs 2 -- --preset quick
    python scripts/sweep.py --backbones mingru lru transformer --datasets mujoco/hopper/medium-v0 \\
        mujoco/walker2d/medium-v0 --devices cuda:0 cuda:1 --jobs 4 -- --preset hopper-medium --download
    python scripts/sweep.py --dry-run ...                                  # the plan only

Flags after `--` go to every scripts/train_agent.py run (--backbone.* ones after backbone:NAME; the
sweep sets --dataset, --seed, --run-name, --runs-dir and --backbone.gradient). Every run's flags are
checked before the first run starts: a typo fails the sweep with nothing launched. Gradient modes a
backbone lacks (the transformer has only bptt) are skipped and listed.

Runs go to <out>/<dataset>-<backbone>-<gradient>-s<seed>/, their output to <out>/logs/. Run the same
command again to continue: finished runs (results.json) are skipped, interrupted ones resume from
their last checkpoint. At the end <out>/report/ holds table.md and table.csv (mean ± std over seeds
of the "last" and "best" normalized scores, datasets x methods, as the minGRU paper's Table 3 and
CORL) and one learning-curve PNG per dataset; scripts/report.py re-makes them from any run folders.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from tqdm import tqdm

from agents.report import make_report
from agents.sweep import SweepError, config_differences, default_jobs, launch, plan, run_state
from envs.builtin_datasets import DEFAULT_DATASET_ID


@dataclass(frozen=True)
class SweepArgs:
    backbones: tuple[str, ...] = ("mingru", "transformer")
    """backbone names from the registry: transformer, mingru, minlstm, lru, gru, lstm, rnn"""
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


def parse(argv: list[str]) -> tuple[SweepArgs, list[str]]:
    split = argv.index("--") if "--" in argv else len(argv)
    args = tyro.cli(SweepArgs, args=argv[:split], description=__doc__)
    return args, argv[split + 1:]


def main(argv: list[str] | None = None) -> int:
    args, train_args = parse(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    try:
        per_backbone: dict[str, list[str]] = {}
        for item in args.backbone_args:
            name, sep, flags = item.partition(":")
            if not sep:
                raise SweepError(f"--backbone-args {item!r}: write NAME:FLAGS, e.g. 'transformer:--backbone.n-heads 2'")
            per_backbone.setdefault(name.strip(), []).extend(flags.split())
        runs, notes = plan(args.backbones, args.gradients, args.datasets, args.seeds, tuple(train_args), per_backbone)
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
            launch(todo, out, min(jobs, len(todo)), threads, args.devices, on_done=done)
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


if __name__ == "__main__":
    sys.exit(main())
