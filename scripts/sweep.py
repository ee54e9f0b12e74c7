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

import sys

import tyro

from agents.sweep import SweepArgs, run_sweep


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    return run_sweep(tyro.cli(SweepArgs, args=argv[:split], description=__doc__), argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main())
