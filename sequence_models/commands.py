"""The console commands of the sequence-modelling library (pyproject [project.scripts], prefix db-):
train-lm, train-copy, gpu-check. They never import agents (agents/commands.py holds the RL ones).
`X_main(argv)` does the work and returns its result (the tests call it); `X(argv=None)` is the entry
point (run_cli: one line per error and the exit code). Imports are inside the functions, so --help
loads only what the command uses. scripts/*.py are aliases of these.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

TRAIN_LM_HELP = """Language modelling with any backbone: Tiny Shakespeare (characters), Penn Treebank, WikiText-2/103 (words).

    db-train-lm                                         # cpu-small: Tiny Shakespeare, minutes on a CPU
    db-train-lm --preset cpu-small backbone:lru --backbone.d-model 64 --backbone.n-layers 2
    db-train-lm --preset shakespeare-char               # nanoGPT's shakespeare_char model
    db-train-lm --preset dsf-ptb --data-dir ../shared/data/ptb --backbone.gradient dsf
    db-train-lm --preset dsf-wikitext103                # downloads WikiText-103 (~180 MB zip)
    db-train-lm --run-name NAME --resume                # continue runs/NAME exactly (stream state too)
    db-train-lm --config runs/NAME/config.yaml          # re-run a run (flags after it override)
    torchrun --nproc-per-node 2 scripts/train_lm.py --batch-size 16    # data parallel (batch per rank)

A preset is a complete set of defaults; every flag overrides it. Batching (window | stream), the
carried state and evaluation: sequence_models/tasks/lm_training.py (flags: lm_config.py). Writes the run folder every task
writes (sequence_models/training/run_folder.py) and prints a markdown results table.
"""

TRAIN_COPY_HELP = """Selective copying (Mamba; the minGRU paper's setting) with any backbone.

    db-train-copy                                    # cpu-small preset: L=256, M=16, minutes on a CPU
    db-train-copy --preset mingru-paper              # d_model 64, expansion 6, 3 layers, L=4096, M=16, vocab 16
    db-train-copy --steps 500 backbone:mingru --backbone.n-layers 1
    db-train-copy backbone:lru --backbone.d-model 32  # another backbone, the preset's shape unless set
    db-train-copy --run-name NAME --resume           # continue runs/NAME exactly
    db-train-copy --config runs/NAME/config.yaml     # re-run a run (flags after it override)

A preset is a complete set of defaults; every flag overrides it. Naming `backbone:NAME` keeps the
preset's backbone fields if NAME is the preset's backbone; another backbone keeps the preset's d_model,
n_layers and dropout (unless --backbone.* flags set them) and takes NAME's defaults for the rest.
Writes the run folder every task writes (sequence_models/training/run_folder.py) and prints a
markdown results table.
"""

GPU_CHECK_HELP = """Run every GPU-only check in one go (at most 8 minutes) and print one markdown table.

    db-gpu-check                      # on a GPU machine: CUDA tests, bf16, training, benchmarks
    db-gpu-check --budget-seconds 300 # a shorter slot: later checks are skipped

Checks (sequence_models/benchmarks/gpu_check.py): the CUDA tests of the Triton kernels, bf16 vs fp32
forward of every backbone, 50 training steps of every backbone on the built-in dataset, the layer
benchmark at T=512 (minGRU vs the looped GRU) and DSF vs BPTT at T=2048. Without a CUDA GPU it says
so and exits 0. Exit status 1 when a check fails.
"""


def _run_cli(main, argv):
    from sequence_models.training.cli import run_cli

    run_cli(main, argv)


def train_lm_main(argv: list[str] | None = None) -> dict:
    from sequence_models.tasks.lm_config import parse_args

    config = parse_args(argv, description=TRAIN_LM_HELP)
    from sequence_models.tasks.lm_training import run  # after the parse: --help loads no torch

    return run(config)


def train_lm(argv: list[str] | None = None) -> None:
    _run_cli(train_lm_main, argv)


def train_copy_main(argv: list[str] | None = None) -> dict:
    from sequence_models.tasks.copy_config import parse_args

    config = parse_args(argv, description=TRAIN_COPY_HELP)
    from sequence_models.tasks.copy_training import run  # after the parse: --help loads no torch

    return run(config)


def train_copy(argv: list[str] | None = None) -> None:
    _run_cli(train_copy_main, argv)


@dataclass(frozen=True)
class GpuCheckArgs:
    budget_seconds: float = 480.0  # gpu_check.BUDGET_SECONDS, not imported so that --help stays light (a test compares)
    """time for all checks together; a check still running at the end is cut off, later ones skipped"""
    work_dir: Path | None = None
    """where the runs and benchmark tables go (default: a fresh temporary folder)"""


def gpu_check_main(argv: list[str] | None = None) -> int:
    import tempfile
    import time

    import tyro

    args = tyro.cli(GpuCheckArgs, args=argv, description=GPU_CHECK_HELP)
    import torch  # after the parse: --help loads neither torch nor the checks

    from sequence_models.benchmarks import gpu_check as checks

    if not torch.cuda.is_available():
        print(checks.NO_GPU_MESSAGE)
        return 0
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    print(f"{checks.describe_gpu()}; outputs in {work_dir}", flush=True)
    start = time.monotonic()
    results = checks.run_checks(checks.default_checks(work_dir), args.budget_seconds)
    print(checks.markdown_table(results))
    print(f"\n{time.monotonic() - start:.0f} s in all")
    return 1 if any(r.status == "FAIL" for r in results) else 0


def gpu_check(argv: list[str] | None = None) -> None:
    sys.exit(gpu_check_main(argv))
