"""One prepared run of everything only a GPU can check, within a fixed time budget (8 minutes).

The Triton kernels, the bf16 paths and the CUDA training loop are only exercised for real on a GPU,
and GPU time comes in short, rare slots: so the checks are prepared here, run in one command
(scripts/gpu_check.py) and summed up in one markdown table (check, result, seconds) that can be
pasted into an issue. On a machine without a CUDA GPU nothing runs.

Checks, in this order (the cheap, most telling ones first, so a short budget still says the most):
  1. the CUDA tests (test names containing "cuda" or "sm90" in the Triton / first-use-check tests);
  2. bf16 (autocast) against fp32 forward of every registered backbone, tiny sizes;
  3. a 50-step training of every backbone on the built-in dataset, all at once;
  4. the layer benchmark at T=512 (minGRU's speed-up over the looped GRU cell);
  5. DSF against BPTT at T=2048 (GRU's speed-up).
The scripts run as subprocesses (scripts/benchmark.py, scripts/train_agent.py), with this
checkout first on PYTHONPATH; a check that would outlive the budget is cut off, later ones skipped.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
BUDGET_SECONDS = 480.0
NO_GPU_MESSAGE = "no CUDA GPU here (torch.cuda.is_available() is False): nothing to check; run this on a GPU machine"
CUDA_TESTS = ("tests/test_scan_triton.py", "tests/test_min_rnn_triton.py", "tests/test_triton_check.py")
BF16_TOLERANCE = 0.05  # relative error of a bf16 forward: 8 mantissa bits, a few layers deep


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str  # "pass", "FAIL" or "skipped"
    summary: str
    seconds: float


@dataclass(frozen=True)
class Check:
    """`run(timeout_seconds)` returns its result rows; it may raise (a FAIL row says why)."""
    name: str
    max_seconds: float
    run: Callable[[float], list[CheckResult]]


def markdown_table(results: list[CheckResult]) -> str:
    lines = ["| check | result | seconds |", "| --- | --- | ---: |"]
    for r in results:
        result = f"{r.status}: {r.summary}" if r.summary else r.status
        lines.append(f"| {r.check} | {result.replace('|', '/')} | {r.seconds:.1f} |")
    return "\n".join(lines)


def run_checks(checks: list[Check], budget_seconds: float = BUDGET_SECONDS, clock=time.monotonic) -> list[CheckResult]:
    """Each check in turn with what is left of the budget (at most its own max_seconds)."""
    deadline = clock() + budget_seconds
    results = []
    for check in checks:
        left = deadline - clock()
        if left < 5:
            results.append(CheckResult(check.name, "skipped", "time budget spent", 0.0))
            continue
        start = clock()
        try:
            results += check.run(min(check.max_seconds, left))
        except Exception as error:  # one broken check must not hide the others
            results.append(CheckResult(check.name, "FAIL", f"{type(error).__name__}: {error}"[:200], clock() - start))
    return results


def _environment() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def run_commands(commands: dict[str, list[str]], timeout: float) -> list[CheckResult]:
    """The commands all at once (each a row: pass if it exits 0), killed at `timeout`."""
    start = time.monotonic()
    running = {name: subprocess.Popen(argv, cwd=REPO, env=_environment(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True) for name, argv in commands.items()}
    results = []
    for name, process in running.items():
        try:
            output, _ = process.communicate(timeout=max(0.0, start + timeout - time.monotonic()))
            status = "pass" if process.returncode == 0 else "FAIL"
            results.append(CheckResult(name, status, _last_line(output), time.monotonic() - start))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            results.append(CheckResult(name, "FAIL", f"cut off after {timeout:.0f} s", time.monotonic() - start))
    return results


def ratio_from_csv(out_dir: Path, column: str, **match: str) -> str:
    """The value of `column` in the first row of any CSV under out_dir whose fields match `match`."""
    for path in sorted(out_dir.glob("*.csv")):
        with path.open() as file:
            for row in csv.DictReader(file):
                if column in row and all(row.get(k) == v for k, v in match.items()):
                    return row[column]
    return "?"


def _benchmark(name: str, argv: list[str], out_dir: Path, column: str, match: dict, label: str) -> Check:
    def run(timeout: float) -> list[CheckResult]:
        [result] = run_commands({name: [sys.executable, "scripts/benchmark.py", *argv, "--out-dir", str(out_dir)]}, timeout)
        if result.status != "pass":
            return [result]
        return [CheckResult(name, "pass", f"{label} {ratio_from_csv(out_dir, column, **match)}", result.seconds)]

    return Check(name, 240, run)


def bf16_agreement(timeout: float, device: str = "cuda") -> list[CheckResult]:
    """bf16 autocast against fp32 forward of every backbone (d_model 64, 2 layers, T=32, eval mode)."""
    from ..backbone import build_backbone
    from ..backbone_configs import BACKBONE_CONFIGS, backbone_config

    start = time.monotonic()
    errors, failed = {}, []
    for name in BACKBONE_CONFIGS:
        torch.manual_seed(0)
        try:
            model = build_backbone(backbone_config(name, d_model=64, n_layers=2, dropout=0.0)).to(device).eval()
            x = torch.randn(4, 32, 64, device=device)
            with torch.no_grad():
                full = model(x)[0].float()
                with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
                    half = model(x)[0].float()
            errors[name] = f"{((half - full).norm() / full.norm()).item():.3f}"
            if not float(errors[name]) < BF16_TOLERANCE:
                failed.append(name)
        except Exception as error:  # one backbone's failure (say, no bf16 kernel) must not hide the others
            errors[name] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:60] if str(error).strip() else ''}"
            failed.append(name)
    summary = ", ".join(f"{n} {e}" for n, e in errors.items())
    status = "FAIL" if failed else "pass"
    return [CheckResult("bf16 vs fp32 forward (relative error)", status, summary, time.monotonic() - start)]


def training_commands(work_dir: Path) -> dict[str, list[str]]:
    """A 50-step training of every registered backbone on the built-in dataset, runs under work_dir."""
    from ..backbone_configs import BACKBONE_CONFIGS

    return {
        f"train {name} (50 steps)": [sys.executable, "scripts/train_agent.py", "--steps", "50", "--eval-episodes", "1",
                                     "--device", "cuda", "--run-name", f"gpu-check-{name}",
                                     "--runs-dir", str(work_dir / "runs"), f"backbone:{name}"]  # tyro: subcommand last
        for name in BACKBONE_CONFIGS
    }


def default_checks(work_dir: Path) -> list[Check]:
    tests = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS, "-k", "cuda or sm90"]
    trainings = training_commands(work_dir)
    return [
        Check("CUDA tests", 180, lambda timeout: run_commands({"CUDA tests": tests}, timeout)),
        Check("bf16 vs fp32 forward", 60, bf16_agreement),
        Check("training", 180, lambda timeout: run_commands(trainings, timeout)),
        _benchmark("layers T=512", ["--suite", "layers", "--lengths", "512"], work_dir / "layers",
                   "speedup_vs_looped_GRU", dict(layer="minGRU", gradient="bptt", T="512"), "minGRU vs looped GRU:"),
        _benchmark("DSF vs BPTT T=2048", ["--suite", "gradient-modes", "--lengths", "2048"], work_dir / "gradient-modes",
                   "speedup_vs_bptt", dict(layer="GRU", gradient="dsf", T="2048"), "GRU dsf speed-up:"),
    ]


def describe_gpu() -> str:
    """The GPU and the versions the results depend on (the Triton checks above all on triton's)."""
    try:
        import triton

        triton_version = triton.__version__
    except Exception:  # noqa: BLE001 - not installed or broken: the CUDA tests will say more
        triton_version = "not importable"
    capability = "".join(map(str, torch.cuda.get_device_capability()))
    return (f"{torch.cuda.get_device_name()} (sm_{capability}), torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, triton {triton_version}")
