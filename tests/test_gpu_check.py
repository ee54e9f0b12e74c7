"""scripts/gpu_check.py without a GPU: it says there is none and exits 0; and its table, budget,
command and CSV logic on fake checks (nothing here needs CUDA)."""

import os
import subprocess
import sys

import pytest
import torch

from script_loading import REPO, load_script
from sequence_models.benchmarks import gpu_check
from sequence_models.benchmarks.gpu_check import Check, CheckResult, markdown_table, ratio_from_csv, run_checks


def test_cpu_only_machine_exits_0_saying_there_is_no_gpu():
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert gpu_check.NO_GPU_MESSAGE in done.stdout


def test_main_checks_for_a_gpu_before_anything_else(monkeypatch, capsys):
    script = load_script("gpu_check")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "default_checks", lambda work_dir: pytest.fail("checks ran without a GPU"))
    assert script.main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


def test_markdown_table_has_one_row_per_result():
    table = markdown_table([
        CheckResult("CUDA tests", "pass", "12 passed", 31.24),
        CheckResult("train lru (50 steps)", "FAIL", "error: a | b", 4.0),
        CheckResult("DSF vs BPTT T=2048", "skipped", "time budget spent", 0.0),
    ])
    lines = table.splitlines()
    assert lines[0] == "| check | result | seconds |" and len(lines) == 5
    assert lines[2] == "| CUDA tests | pass: 12 passed | 31.2 |"
    assert lines[3] == "| train lru (50 steps) | FAIL: error: a / b | 4.0 |"  # a | would split the cell
    assert lines[4].startswith("| DSF vs BPTT T=2048 | skipped: time budget spent |")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_run_checks_reports_failures_and_skips_what_the_budget_cannot_hold():
    clock = FakeClock()
    timeouts = []

    def slow(timeout):
        timeouts.append(timeout)
        clock.now += 100
        return [CheckResult("slow", "pass", "", 100.0)]

    def broken(timeout):
        raise RuntimeError("no such flag --lengths")

    checks = [Check("slow", 150, slow), Check("broken", 60, broken), Check("slow again", 500, slow), Check("late", 10, slow)]
    results = run_checks(checks, budget_seconds=202, clock=clock)
    assert [(r.check, r.status) for r in results] == [
        ("slow", "pass"), ("broken", "FAIL"), ("slow", "pass"), ("late", "skipped")]
    assert "no such flag" in results[1].summary
    assert timeouts == [150, 102]  # its own limit, then what is left of the budget


def test_run_commands_runs_them_together_and_cuts_off_at_the_timeout():
    python = sys.executable
    results = gpu_check.run_commands({
        "ok": [python, "-c", "print('first'); print('done')"],
        "fails": [python, "-c", "import sys; sys.exit('error: bad flag')"],
        "hangs": [python, "-c", "import time; time.sleep(60)"],
    }, timeout=5)
    by_name = {r.check: r for r in results}
    assert (by_name["ok"].status, by_name["ok"].summary) == ("pass", "done")
    assert (by_name["fails"].status, by_name["fails"].summary) == ("FAIL", "error: bad flag")
    assert by_name["hangs"].status == "FAIL" and "cut off" in by_name["hangs"].summary


def test_ratio_from_csv_finds_the_matching_row(tmp_path):
    (tmp_path / "layers_ratios.csv").write_text(
        "layer,gradient,T,speedup_vs_looped_GRU\nGRU,bptt,512,1.0\nminGRU,bptt,512,41.5\n")
    assert ratio_from_csv(tmp_path, "speedup_vs_looped_GRU", layer="minGRU", T="512") == "41.5"
    assert ratio_from_csv(tmp_path, "speedup_vs_looped_GRU", layer="LRU") == "?"


def test_default_checks_train_every_registered_backbone(tmp_path):
    from sequence_models.backbone_configs import BACKBONE_CONFIGS

    names = [check.name for check in gpu_check.default_checks(tmp_path)]
    assert names == ["CUDA tests", "bf16 vs fp32 forward", "training", "layers T=512", "DSF vs BPTT T=2048"]
    assert sum(check.max_seconds for check in gpu_check.default_checks(tmp_path)) >= gpu_check.BUDGET_SECONDS
    assert len(BACKBONE_CONFIGS) >= 7


def test_bf16_check_gives_one_row_naming_every_backbone():
    from sequence_models.backbone_configs import BACKBONE_CONFIGS

    [result] = gpu_check.bf16_agreement(60, device="cpu")  # CPU autocast: only the row's shape is checked here
    assert result.status in ("pass", "FAIL")
    assert all(name in result.summary for name in BACKBONE_CONFIGS)


def test_the_prepared_commands_parse():
    """The flags gpu_check passes to train_agent and benchmark exist (parsed, nothing run)."""
    import tyro

    from agents.config import parse_args
    from sequence_models.backbone_configs import BACKBONE_CONFIGS

    commands = gpu_check.training_commands(REPO)
    assert len(commands) == len(BACKBONE_CONFIGS)
    for command in commands.values():
        config = parse_args(command[2:])
        assert config.steps == 50 and config.run.device == "cuda"
    benchmark = load_script("benchmark")
    for argv in (["--suite", "layers", "--lengths", "512"], ["--suite", "gradient-modes", "--lengths", "2048"]):
        tyro.cli(benchmark.Args, args=[*argv, "--out-dir", "/tmp/x"])
