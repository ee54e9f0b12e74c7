"""The console commands that import agents (pyproject [project.scripts], prefix db-): each `X_main(argv)`
does the work and returns its result (the tests call it; errors propagate), each `X(argv=None)` is
the entry point: the main through run_cli (one line per error, the exit code) or sys.exit(code).

scripts/*.py are aliases of these, so `python scripts/train_agent.py` keeps working in a checkout.
Every import below is inside the function that needs it, so `db-X --help` loads only what X uses
(gymnasium, minari, tensorboard and matplotlib stay unloaded for the --help of most commands).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

TRAIN_AGENT_HELP = """Train a Decision agent on a Minari dataset with any sequence backbone, then evaluate it.

    db-train-agent                                   # built-in dataset, small minGRU, minutes on a CPU
    db-train-agent backbone:transformer              # the preset's 2 x 64, one head
    db-train-agent backbone:gru --backbone.gradient dsf
    db-train-agent --preset hopper-medium            # DT's settings on mujoco/hopper/medium-v0
    db-train-agent --preset hopper-medium --download backbone:lru
    db-train-agent --preset dt --dataset mujoco/ant/medium-v0 --download   # DT's settings, any MuJoCo family
    db-train-agent --eval-video 2                   # 2 episodes per target to runs/NAME/videos/*.mp4
    db-train-agent --run-name NAME --resume          # continue runs/NAME exactly where it stopped
    db-train-agent --config runs/NAME/config.yaml    # re-run a run (flags after it override)
    torchrun --nproc-per-node 2 scripts/train_agent.py --batch-size 32   # data parallel: 2 ranks x 32 = global batch 64

Presets: quick (default), {hopper,halfcheetah,walker2d}-{simple,medium,expert} and dt (DT's settings for
any --dataset: the paper's targets for hopper/halfcheetah/walker2d, else (R, R - |R|/2) from the
dataset's best return R, printed at the start); see agents/config.py.
Writes runs/<name>/{config.yaml, events.*, metrics.jsonl, checkpoints/{last,best}.pt, results.json}.
"""

EVALUATE_AGENT_HELP = """Evaluate a trained Decision agent: several return targets x episodes in one vector env.

    db-evaluate-agent runs/NAME                          # best.pt (else last.pt), the run's targets
    db-evaluate-agent runs/NAME/checkpoints/last.pt --mode window --episodes 20
    db-evaluate-agent runs/NAME --targets 9000 6000 3000 --vectorization async
    db-evaluate-agent runs/NAME --video 2                 # also runs/NAME/videos/eval-best-step*-target*-ep*.mp4

Prints mean ± std return and normalized score per target (0 = random policy, 100 = the dataset's
reference expert; the reference's name is printed with it), episode lengths and env steps/s, and
writes the same to runs/NAME/eval-<checkpoint>-<mode>.json. The checkpoint carries the env spec and
the reference, so no dataset is needed. A checkpoint loads with weights_only=True (it never runs code).
"""

MAKE_DATASET_HELP = """Write a Minari dataset locally, no network needed.

    db-make-dataset                                                   # the default built-in
    db-make-dataset --dataset-id builtin/reacher/expert-v0
    db-make-dataset --all-builtin
    db-make-dataset --dataset-id local/hopper/random-v0 --env-id Hopper-v5 --num-episodes 100
    db-make-dataset --list

Built-in ids (builtin/...) are scripted controllers plus noise (see envs/builtin_datasets.py); any
other id with --env-id records the uniform random policy on that Gymnasium env (no reference scores in
its metadata: scores on it come from envs/reference_scores.csv or D4RL, named as such). Datasets go to the Minari folder (MINARI_DATASETS_PATH, default
~/.minari/datasets); a failed run leaves nothing there.
"""

MEASURE_REFERENCE_SCORES_HELP = """Measure reference scores (0 = random policy, 100 = expert) on the envs' own versions.

The random-policy return (ref_min) is measured here: `num_episodes` episodes, episode i seeded with
seed + i (reset and action space). The expert return (ref_max) is the mean episode return of the
expert dataset of the same env when it is local (`minari download mujoco/hopper/expert-v0`);
otherwise D4RL's v2 expert constant is kept, and the table says so.

    db-measure-reference-scores                # measure, print, update envs/reference_scores.csv
    db-measure-reference-scores --no-write-table --num-episodes 10
"""

SWEEP_HELP = """Run a grid of agent runs (backbones x gradient modes x datasets x seeds) and tabulate it.

    db-sweep --backbones mingru transformer --seeds 0 1 2 -- --steps 2000 --eval-every 500
    db-sweep --backbones gru lstm --gradients bptt dsf truncated --jobs 2 -- --preset quick
    db-sweep --backbones mingru lru transformer --datasets mujoco/hopper/medium-v0 \\
        mujoco/walker2d/medium-v0 --devices cuda:0 cuda:1 --jobs 4 -- --preset hopper-medium --download
    db-sweep --dry-run ...                                  # the plan only
    db-sweep --launcher slurm --slurm-partition gpu --slurm-gpus-per-run 1 --slurm-time-min 240 \\
        --backbones mingru lru transformer --datasets mujoco/hopper/medium-v0 -- --preset dt --download

Flags after `--` go to every scripts/train_agent.py run (--backbone.* ones after backbone:NAME; the
sweep sets --dataset, --seed, --run-name, --runs-dir and --backbone.gradient). Every run's flags are
checked before the first run starts: a typo fails the sweep with nothing launched. Gradient modes a
backbone lacks (the transformer has only bptt) are skipped and listed.

Runs go to <out>/<dataset>-<backbone>-<gradient>-s<seed>/, their output to <out>/logs/. Run the same
command again to continue: finished runs (results.json) are skipped, interrupted ones resume from
their last checkpoint. At the end <out>/report/ holds table.md and table.csv (mean ± std over seeds
of the "last" and "best" normalized scores, datasets x methods, as the minGRU paper's Table 3 and
CORL), one learning-curve PNG per dataset and index.html (all of it on one page, with links to the
runs' videos); db-report re-makes them from any run folders.

--launcher slurm submits one job per run through submitit (pip install -e '.[slurm]') and waits for
them; a preempted or timed-out job Ctrl-Cs its run (which writes checkpoints/last.pt) and requeues
itself, resuming exactly. A job lost without warning: run the same command again; it resumes from
last.pt (at most --checkpoint-every steps lost) and skips what is finished.
"""

REPORT_HELP = """Compare finished agent runs: a datasets x methods table of mean ± std over seeds, and learning curves.

    db-report runs/sweep                     # every run under the folder
    db-report runs/a runs/b --out report/    # particular runs; files into report/
    db-report runs --ddof 1 --decimals 2     # sample std, more digits

Reads each run folder's results.json, config.yaml and metrics.jsonl (any folder holding a
results.json from scripts/train_agent.py counts). Prints the markdown table; with --out (default
<first folder>/report) writes table.md, table.csv and one PNG per dataset (evaluation score and
training loss against the step, mean over seeds with a ± std band). The table's columns are "last"
(final evaluation) and "best" (best evaluation) per method, as CORL reports; see agents/report.py.
index.html holds the table, the PNGs embedded and links to each run's videos/ (agents/results_page.py).
"""


def _run_cli(main, argv):
    from sequence_models.training.cli import run_cli

    run_cli(main, argv)


# -- train-agent --------------------------------------------------------------------------------------
def train_agent_main(argv: list[str] | None = None) -> dict:
    from agents.config import parse_args
    from envs.minari_ids import known_ids_line

    config = parse_args(argv, description=f"{TRAIN_AGENT_HELP}\nKnown Minari MuJoCo ids: {known_ids_line()}\n")
    from agents.run import train_agent as run  # after the parse: --help loads no torch

    return run(config)


def train_agent(argv: list[str] | None = None) -> None:
    _run_cli(train_agent_main, argv)


# -- evaluate-agent -----------------------------------------------------------------------------------
def evaluate_agent_main(argv: list[str] | None = None) -> dict:
    from agents.evaluate_checkpoint import EvaluateArgs, evaluate_checkpoint
    from sequence_models.training.config import cli

    return evaluate_checkpoint(cli(EvaluateArgs, argv, EVALUATE_AGENT_HELP))


def evaluate_agent(argv: list[str] | None = None) -> None:
    _run_cli(evaluate_agent_main, argv)


# -- make-dataset -------------------------------------------------------------------------------------
def make_dataset_main(argv: list[str] | None = None) -> None:
    from envs.command_args import MakeDatasetArgs
    from sequence_models.training.config import cli

    args = cli(MakeDatasetArgs, argv, MAKE_DATASET_HELP)
    from envs.dataset_making import make_datasets  # after parsing: --help needs no gymnasium

    make_datasets(args)


def make_dataset(argv: list[str] | None = None) -> None:
    _run_cli(make_dataset_main, argv)


# -- measure-reference-scores -------------------------------------------------------------------------
def measure_reference_scores_main(argv: list[str] | None = None) -> None:
    import os

    from envs.command_args import MeasureArgs
    from sequence_models.training.config import cli

    args = cli(MeasureArgs, argv, MEASURE_REFERENCE_SCORES_HELP)
    from envs.reference_measuring import measure_reference_scores  # after parsing: --help needs no minari

    program = os.path.relpath(sys.argv[0]) if sys.argv[0].endswith(".py") else os.path.basename(sys.argv[0])
    command = ("python " if program.endswith(".py") else "") + " ".join([program, *sys.argv[1:]])
    measure_reference_scores(args, command)


def measure_reference_scores(argv: list[str] | None = None) -> None:
    _run_cli(measure_reference_scores_main, argv)


# -- sweep --------------------------------------------------------------------------------------------
def sweep_main(argv: list[str] | None = None) -> int:
    from agents.sweep import SweepArgs, run_sweep

    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    return run_sweep(tyro.cli(SweepArgs, args=argv[:split], description=SWEEP_HELP), argv[split + 1:])


def sweep(argv: list[str] | None = None) -> None:
    sys.exit(sweep_main(argv))


# -- report -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportArgs:
    paths: tyro.conf.Positional[tuple[str, ...]] = ("runs",)
    """run folders, or folders holding run folders"""
    out: str = ""
    """where table.md, table.csv, index.html and the PNGs go (default: <first path>/report); 'none' writes nothing"""
    ddof: int = 0
    """std over seeds: 0 population (CORL, numpy's default), 1 sample"""
    decimals: int = 1
    plots: bool = True
    """learning-curve PNGs (needs matplotlib: pip install -e '.[plots]')"""


def report_main(argv: list[str] | None = None) -> int:
    from agents.report import make_report

    args = tyro.cli(ReportArgs, args=argv, description=REPORT_HELP)
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


def report(argv: list[str] | None = None) -> None:
    sys.exit(report_main(argv))


# -- benchmark ----------------------------------------------------------------------------------------
def benchmark(argv: list[str] | None = None) -> None:
    from agents.benchmarks import suites
    from sequence_models.training.cli import run_cli
    from sequence_models.training.config import cli

    run_cli(lambda argv: suites.run_benchmarks(cli(suites.Args, argv, suites.__doc__)), argv)


# -- claims -------------------------------------------------------------------------------------------
def claims_main(argv: list[str] | None = None) -> bool:
    from agents.benchmarks import claims_suite
    from sequence_models.training.config import cli

    return claims_suite.run_claims(cli(claims_suite.ClaimsArgs, argv, claims_suite.__doc__))


def claims(argv: list[str] | None = None) -> None:
    """Exit 0 when every claim's verdict holds, 1 when one does not."""
    from sequence_models.training.cli import run_cli

    run_cli(lambda argv: claims_main(argv) or sys.exit(1), argv)
