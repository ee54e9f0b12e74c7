"""scripts/sweep.py and scripts/report.py: the table's means and stds against hand-computed numbers,
bad grids failing before anything starts, and a real tiny sweep that skips its finished runs."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from agents.report import make_report, mean_curve

REPO = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fake_run(root: Path, dataset: str, backbone: str, gradient: str, seed: int, last: float, best: float,
             curve: list[tuple[int, float]], reference: bool = True) -> Path:
    run = root / f"{dataset.replace('/', '-')}-{backbone}-{gradient}-s{seed}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"command": "x", "config": {"seed": seed, "dataset": dataset}}))
    kind = "normalized" if reference else "return"
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "train/loss": 1.0 / s}) + "\n" + json.dumps({"step": s, f"eval/{kind}@3600": v}) + "\n"
        for s, v in curve))
    (run / "results.json").write_text(json.dumps({
        "dataset": dataset, "backbone": backbone, "gradient": gradient, "steps": curve[-1][0],
        "reference": "d4rl" if reference else None, "final_score": {"3600": last, "1800": -1.0},
        "best": {"step": 1, "score": best},
    }))
    return run


def test_table_means_and_stds_match_hand_computed_numbers(tmp_path, capsys):
    root = tmp_path / "runs"
    hopper, walker = "mujoco/hopper/medium-v0", "mujoco/walker2d/medium-v0"
    for seed, (last, best) in enumerate([(10.0, 40.0), (20.0, 50.0), (30.0, 90.0)]):
        fake_run(root, hopper, "mingru", "bptt", seed, last, best, [(10, last / 2), (20, last)])
        fake_run(root, walker, "mingru", "bptt", seed, last + 1, best + 1, [(10, 1.0), (20, last + 1)])
    for seed, last in enumerate([60.0, 64.0]):
        fake_run(root, hopper, "gru", "dsf", seed, last, last, [(10, last), (20, last)])
    (root / "unfinished").mkdir()  # no results.json: not a run

    report = make_report([root], tmp_path / "report")
    rows = {(r["dataset"], r["method"]): r for r in csv.DictReader(io.StringIO(report.csv))}
    assert set(rows) == {("hopper-medium", "mingru"), ("walker2d-medium", "mingru"), ("hopper-medium", "gru-dsf")}
    m = rows[("hopper-medium", "mingru")]
    assert m["n_seeds"] == "3" and m["seeds"] == "0 1 2"
    assert float(m["last_mean"]) == pytest.approx(20.0)
    assert float(m["last_std"]) == pytest.approx(math.sqrt(((10 - 20) ** 2 + 0 + (30 - 20) ** 2) / 3))  # population std
    assert float(m["best_mean"]) == pytest.approx(60.0)
    assert float(m["best_std"]) == pytest.approx(math.sqrt((400 + 100 + 900) / 3))
    g = rows[("hopper-medium", "gru-dsf")]
    assert (float(g["last_mean"]), float(g["last_std"])) == pytest.approx((62.0, 2.0))

    table = report.markdown
    assert "| dataset | gru-dsf last | gru-dsf best | mingru last | mingru best |" in table
    assert "| hopper-medium | 62.0 ± 2.0 (n=2) | 62.0 ± 2.0 (n=2) | 20.0 ± 8.2 | 60.0 ± 21.6 |" in table
    assert "| walker2d-medium | - | - | 21.0 ± 8.2 | 61.0 ± 21.6 |" in table
    assert "| average | 62.0 (1 of 2) | 62.0 (1 of 2) | 20.5 | 60.5 |" in table
    assert "population (ddof=0)" in table
    assert (tmp_path / "report" / "table.md").read_text() == table
    sample = make_report([root], None, ddof=1)
    assert float(next(csv.DictReader(io.StringIO(sample.csv)))["last_std"]) == pytest.approx(math.sqrt(((60 - 62) ** 2 + (64 - 62) ** 2) / (2 - 1)))  # gru-dsf on hopper

    steps, mean, std = mean_curve([[(10, 5.0), (20, 10.0)], [(10, 7.0), (20, 30.0), (30, 1.0)]])
    assert steps.tolist() == [10, 20] and mean.tolist() == [6.0, 20.0] and std.tolist() == [1.0, 10.0]
    if report.plots is not None:  # matplotlib installed
        assert sorted(p.name for p in report.plots) == ["hopper-medium.png", "walker2d-medium.png"]
        assert all(p.stat().st_size > 1000 for p in report.plots)

    assert _script("report").main([str(root), "--out", "none"]) == 0
    assert "| hopper-medium | 62.0 ± 2.0 (n=2)" in capsys.readouterr().out


def test_a_bad_grid_fails_before_anything_starts(tmp_path, capsys):
    sweep = _script("sweep")
    out = tmp_path / "sweep"
    assert sweep.main(["--backbones", "mingru", "transfomer", "--out", str(out), "--", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "unknown backbone 'transfomer' (did you mean 'transformer'?)" in err and "nothing was started" in err
    assert sweep.main(["--backbones", "mingru", "--gradients", "dfs", "--out", str(out)]) == 2
    assert "unknown gradient mode 'dfs'" in capsys.readouterr().err
    assert sweep.main(["--backbones", "transformer", "--gradients", "dsf", "--out", str(out)]) == 2
    assert "supports none of the gradient modes" in capsys.readouterr().err
    assert sweep.main(["--backbones", "mingru", "--out", str(out), "--", "--stepz", "2"]) == 2
    assert "--stepz" in capsys.readouterr().err
    assert sweep.main(["--backbones", "mingru", "--out", str(out), "--", "--seed", "2"]) == 2
    assert "the sweep sets it" in capsys.readouterr().err
    assert not out.exists()
    # gradient modes a backbone lacks are skipped (listed), not errors
    assert sweep.main(["--dry-run", "--backbones", "transformer", "gru", "--gradients", "bptt", "dsf", "--seeds", "0",
                       "--out", str(out), "--", "--backbone.d-model", "16"]) == 0
    text = capsys.readouterr().out
    assert "skipped transformer x dsf" in text and "3 runs" in text and not out.exists()


def test_tiny_sweep_runs_then_skips_its_finished_runs(tmp_path, capsys):
    sweep = _script("sweep")
    out = tmp_path / "sweep"
    argv = ["--backbones", "mingru", "--seeds", "0", "1", "--jobs", "2", "--threads", "1", "--no-plots",
            "--out", str(out), "--", "--steps", "2", "--context-len", "4", "--batch-size", "8", "--warmup-steps", "1",
            "--eval-episodes", "2", "--eval-max-steps", "8", "--eval-targets", "9000",
            "--backbone.d-model", "16", "--backbone.n-layers", "1"]
    assert sweep.main(argv) == 0
    first = capsys.readouterr().out
    assert "2 runs in" in first and "2 to start" in first
    runs = sorted(p for p in out.iterdir() if (p / "results.json").is_file())
    assert [p.name for p in runs] == [f"builtin-inverteddoublependulum-mixed-mingru-bptt-s{s}" for s in (0, 1)]
    scores = [json.loads((p / "results.json").read_text())["final_score"]["9000"] for p in runs]
    row = next(csv.DictReader(io.StringIO((out / "report" / "table.csv").read_text())))
    assert float(row["last_mean"]) == pytest.approx(sum(scores) / 2)
    assert float(row["last_std"]) == pytest.approx(abs(scores[0] - scores[1]) / 2)
    logs = {p: p.stat().st_mtime_ns for p in (out / "logs").iterdir()}

    assert sweep.main(argv) == 0  # again: nothing to do
    second = capsys.readouterr().out
    assert "2 finished (skipped)" in second and "0 to start" in second
    assert {p: p.stat().st_mtime_ns for p in (out / "logs").iterdir()} == logs


def test_submitit_sweep_runs_its_jobs_in_the_same_folders_and_skips_them_after(tmp_path, capsys):
    """--launcher submitit-local: the SLURM path (one submitit job per run) on this machine."""
    pytest.importorskip("submitit")
    sweep = _script("sweep")
    out = tmp_path / "sweep"
    argv = ["--backbones", "mingru", "--seeds", "0", "--launcher", "submitit-local", "--slurm-cpus-per-run", "1",
            "--no-plots", "--out", str(out), "--", "--steps", "2", "--context-len", "4", "--batch-size", "8",
            "--warmup-steps", "1", "--eval-episodes", "1", "--eval-max-steps", "4", "--eval-targets", "9000",
            "--backbone.d-model", "16", "--backbone.n-layers", "1"]
    assert sweep.main(argv) == 0
    first = capsys.readouterr().out
    assert "submitted 1 job(s) (submitit-local)" in first
    run = out / "builtin-inverteddoublependulum-mixed-mingru-bptt-s0"
    assert (run / "results.json").is_file() and (run / "checkpoints" / "last.pt").is_file()
    assert (out / "report" / "table.md").is_file() and (out / "report" / "index.html").is_file()
    assert sweep.main(argv) == 0
    assert "1 finished (skipped)" in capsys.readouterr().out


def test_a_preempted_job_interrupts_its_run_and_requeues_itself(tmp_path):
    """TrainJob.checkpoint (what submitit calls on preemption): Ctrl-C to the run, then the same job again,
    which resumes from last.pt because run_state sees it."""
    pytest.importorskip("submitit")
    import signal

    from agents.slurm_jobs import TrainJob
    from agents.sweep import plan

    [run], _ = plan(["mingru"], ["bptt"], ["builtin/inverteddoublependulum/mixed-v0"], [0], ("--steps", "2"))
    job = TrainJob(run, tmp_path, 1, None)

    class Running:
        signals: list = []

        def poll(self):
            return None

        def send_signal(self, sig):
            self.signals.append(sig)

        def wait(self, timeout=None):
            return 130

    job.process = Running()
    again = job.checkpoint()
    assert Running.signals == [signal.SIGINT]
    assert isinstance(again.function, TrainJob) and again.function.run == run and again.function.process is None


def test_runs_of_other_protocols_are_not_seeds_and_raw_returns_stay_out_of_the_average(tmp_path):
    root = tmp_path / "runs"
    hopper, custom = "mujoco/hopper/medium-v0", "local/custom/random-v0"
    for seed, last in enumerate([10.0, 30.0]):
        fake_run(root, hopper, "mingru", "bptt", seed, last, last, [(10, last)])
    window = fake_run(root / "window", hopper, "mingru", "bptt", 0, 90.0, 90.0, [(10, 90.0)])
    config = yaml.safe_load((window / "config.yaml").read_text())
    config["config"]["eval_mode"] = "window"
    (window / "config.yaml").write_text(yaml.safe_dump(config))
    again = fake_run(root / "z-rerun", hopper, "mingru", "bptt", 1, 99.0, 99.0, [(10, 99.0)])  # a NAME-2 re-run of seed 1
    fake_run(root, custom, "mingru", "bptt", 0, -500.0, -500.0, [(10, -500.0)], reference=False)

    report = make_report([root], None)
    rows = {(r["dataset"], r["method"]): r for r in csv.DictReader(io.StringIO(report.csv))}
    assert float(rows[("hopper-medium", "mingru [eval_mode=None]")]["last_mean"]) == pytest.approx(20.0)
    assert float(rows[("hopper-medium", "mingru [eval_mode=window]")]["last_mean"]) == pytest.approx(90.0)
    assert any(str(again) in w and "same dataset, settings and seed" in w for w in report.warnings)
    assert rows[("custom-random", "mingru [eval_mode=None]")]["unit"] == "return"
    # the average of the default protocol's column is hopper's normalized 20.0, never mixed with -500
    assert "| average | 20.0 (1 of 2) | 20.0 (1 of 2) | 90.0 (1 of 2) | 90.0 (1 of 2) |" in report.markdown


def test_a_backbone_option_that_differs_labels_its_column_by_that_option(tmp_path):
    root = tmp_path / "runs"
    for kernel in (0, 4):
        run = fake_run(root / f"k{kernel}", "mujoco/hopper/medium-v0", "mingru", "bptt", 0, 10.0 + kernel, 10.0,
                       [(10, 10.0)])
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["config"]["backbone"] = {"name": "mingru", "d_model": 64, "conv_kernel": kernel}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(make_report([root], None).csv))}
    assert set(rows) == {"mingru [backbone.conv_kernel=0]", "mingru [backbone.conv_kernel=4]"}
    assert float(rows["mingru [backbone.conv_kernel=4]"]["last_mean"]) == pytest.approx(14.0)
