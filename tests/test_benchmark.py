"""scripts/benchmark.py: every suite end to end on tiny sizes (files written, ratio columns computed from
the rows), and the suites' ratio / target arithmetic on hand-made rows. Timings are never asserted."""

import builtins
import csv
import math
from pathlib import Path

import pytest

from agents.benchmarks import long_context
from sequence_models.benchmarks import gradient_modes, layers, precision
from sequence_models.benchmarks.tables import Table, write_plots
from tests.script_loading import load_script

bench = load_script("benchmark")
TINY_LAYERS = dict(dim=16, batch=2, repeats=1, cpu_threads=0)
TINY_AGENT = dict(backbones=("transformer", "mingru", "lru"), embed=16, n_layers=1, episodes=2, baseline_episodes=1,
                  max_steps=8, train_steps=1, train_batch=4, latency_batches=(1, 3), latency_steps=2,
                  context_lens=(20, 1000), long_context_tokens=1000, long_context_steps=1)


def _read(path: Path) -> list[dict]:
    with path.open() as file:
        return list(csv.DictReader(file))


def _num(value: str):
    return float(value) if value != "" else ""


def _close(a, b) -> bool:
    return (a == "" and b == "") or (a != "" and b != "" and math.isclose(float(a), float(b), rel_tol=1e-6))


# -- arithmetic on hand-made rows ---------------------------------------------------------------------
def _layer_row(layer, gradient, length, ms, saved, peak, cuda=""):
    return {"layer": layer, "gradient": gradient, "T": length, "ms": ms, "saved_MiB": saved, "peak_MiB": peak,
            "cuda_peak_MiB": cuda}


HAND_ROWS = [
    _layer_row("minGRU", "bptt", 512, 10.0, 4.0, 6.0),
    _layer_row("minGRU", "dsf", 512, 5.0, 1.0, 3.0),
    _layer_row("nn.GRU (fused)", "-", 512, 20.0, 8.0, 8.0),
    _layer_row("GRU cell (looped)", "-", 512, 400.0, 7.0, 7.0),
    _layer_row("GRU", "bptt", 2048, 90.0, 16.0, 16.0),
    _layer_row("GRU", "dsf", 2048, 30.0, 2.0, 16.0),
    _layer_row("minGRU", "bptt", 4096, 50.0, 32.0, 48.0),
    _layer_row("nn.GRU (fused)", "-", 4096, 160.0, 64.0, 40.0),
]


def test_layer_and_gradient_mode_ratios_arithmetic():
    ratios = {(r["layer"], r["gradient"], r["T"]): r for r in layers.layer_ratios(HAND_ROWS)}
    mingru = ratios["minGRU", "bptt", 512]
    assert mingru["speedup_vs_fused_GRU"] == pytest.approx(2.0)
    assert mingru["speedup_vs_looped_GRU"] == pytest.approx(40.0)
    assert mingru["saved_memory_vs_fused_GRU"] == pytest.approx(0.5)
    assert mingru["peak_memory_vs_fused_GRU"] == pytest.approx(0.75)
    assert ratios["nn.GRU (fused)", "-", 512]["speedup_vs_fused_GRU"] == pytest.approx(1.0)
    gru = ratios["GRU", "bptt", 2048]  # no baseline measured at T=2048
    assert gru["speedup_vs_fused_GRU"] == gru["speedup_vs_looped_GRU"] == gru["peak_memory_vs_fused_GRU"] == ""
    assert ratios["minGRU", "bptt", 4096]["speedup_vs_looped_GRU"] == ""  # the looped cell is capped

    modes = {(r["layer"], r["T"], r["gradient"]): r for r in gradient_modes.gradient_mode_ratios(HAND_ROWS)}
    assert set(modes) == {("minGRU", 512, "dsf"), ("GRU", 2048, "dsf")}
    assert modes["GRU", 2048, "dsf"]["speedup_vs_bptt"] == pytest.approx(3.0)
    assert modes["GRU", 2048, "dsf"]["saved_vs_bptt"] == pytest.approx(0.125)
    assert modes["minGRU", 512, "dsf"]["peak_vs_bptt"] == pytest.approx(0.5)


def test_memory_ratios_use_the_cuda_peak_when_there_is_one():
    rows = [_layer_row("minGRU", "bptt", 64, 1.0, 1.0, 2.0, cuda=30.0),
            _layer_row("nn.GRU (fused)", "-", 64, 1.0, 1.0, 8.0, cuda=60.0)]
    assert layers.layer_ratios(rows)[0]["peak_memory_vs_fused_GRU"] == pytest.approx(0.5)


def test_targets_met_not_met_and_not_measured():
    targets = layers.layer_targets(HAND_ROWS, 64, 256)
    assert [t["measured"] for t in targets] == pytest.approx([2.0, 40.0, 1.2, 3.0])
    assert [t["status"] for t in targets] == ["met", "met", "not met", "met"]
    assert all("B=64, D=256" in t["target"] and "(the target's" not in t["target"] for t in targets)

    partial = layers.layer_targets(HAND_ROWS[:2], 2, 16)
    assert all(t["status"].startswith("not measured") for t in partial)
    assert "(the target's: B=64, D=256)" in partial[0]["target"]

    long_rows = [{"backbone": b, "K": k, "us_per_timestep": us}
                 for b, k, us in [("transformer", 20, 10.0), ("transformer", 1000, 90.0), ("mingru", 20, 10.0),
                                  ("mingru", 1000, 15.0), ("lru", 20, 10.0), ("lru", 1000, 25.0)]]
    ratios = {r["backbone"]: r for r in long_context.long_context_ratios(long_rows)}
    assert ratios["transformer"]["ratio"] == pytest.approx(9.0) and ratios["transformer"]["status"] == "-"
    assert (ratios["mingru"]["ratio"], ratios["mingru"]["status"]) == (pytest.approx(1.5), "met")
    assert (ratios["lru"]["ratio"], ratios["lru"]["status"]) == (pytest.approx(2.5), "not met")
    assert [t["status"] for t in long_context.long_context_targets(long_rows)] == ["met", "not met"]


# -- suites end to end --------------------------------------------------------------------------------
def _check_layer_ratio_files(out: Path, stem: str, ratios_name: str) -> list[dict]:
    rows = [{**r, "T": int(r["T"]), **{c: _num(r[c]) for c in ("ms", "saved_MiB", "peak_MiB", "cuda_peak_MiB")}}
            for r in _read(out / f"{stem}.csv")]
    expected = gradient_modes.gradient_mode_ratios(rows)
    written = _read(out / f"{ratios_name}.csv")
    assert len(written) == len(expected) > 0
    for got, want in zip(written, expected):
        assert (got["layer"], int(got["T"]), got["gradient"]) == (want["layer"], want["T"], want["gradient"])
        assert all(_close(got[c], want[c]) for c in ("speedup_vs_bptt", "saved_vs_bptt", "peak_vs_bptt"))
    return rows


def test_layers_suite_every_layer_and_mode(tmp_path):
    bench.main(bench.Args(suite="layers", lengths=(8, 16), out_dir=tmp_path, **TINY_LAYERS))
    for name in ("layers.csv", "layers_ratios.csv", "layers_gradient_modes.csv", "layers_targets.csv", "layers.md",
                 "layers_figure.png", "layers_gradient_modes.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = _check_layer_ratio_files(tmp_path, "layers", "layers_gradient_modes")
    kinds = {(r["layer"], r["gradient"]) for r in rows}
    assert len(kinds) == 6 * 3 + 5  # six recurrent layers x three modes, attention, mamba, s4d, the two GRU baselines
    assert {r["T"] for r in rows} == {8, 16}
    by_key = {(r["layer"], r["gradient"], r["T"]): r for r in rows}
    for ratio in _read(tmp_path / "layers_ratios.csv"):
        row, fused = by_key[ratio["layer"], ratio["gradient"], int(ratio["T"])], by_key["nn.GRU (fused)", "-", int(ratio["T"])]
        looped = by_key["GRU cell (looped)", "-", int(ratio["T"])]
        assert _close(ratio["speedup_vs_fused_GRU"], fused["ms"] / row["ms"])
        assert _close(ratio["speedup_vs_looped_GRU"], looped["ms"] / row["ms"])
        assert _close(ratio["saved_memory_vs_fused_GRU"], row["saved_MiB"] / fused["saved_MiB"])
        assert _close(ratio["peak_memory_vs_fused_GRU"], row["peak_MiB"] / fused["peak_MiB"])
    assert all(t["status"].startswith("not measured") for t in _read(tmp_path / "layers_targets.csv"))
    text = (tmp_path / "layers.md").read_text()
    assert text.startswith("device: cpu") and "torch " in text and "| minGRU | dsf | 16 |" in text


def test_layers_filter_and_targets_at_512(tmp_path):
    args = bench.Args(suite="layers", lengths=(512,), layers=("mingru", "fused-gru", "looped-gru"), gradients=("bptt",),
                      out_dir=tmp_path, plots=False, **TINY_LAYERS)
    bench.main(args)
    rows = _read(tmp_path / "layers.csv")
    assert {(r["layer"], r["gradient"]) for r in rows} == {("minGRU", "bptt"), ("nn.GRU (fused)", "-"), ("GRU cell (looped)", "-")}
    targets = _read(tmp_path / "layers_targets.csv")
    assert [t["status"] in ("met", "not met") for t in targets] == [True, True, False, False]
    assert not list(tmp_path.glob("*.png"))
    with pytest.raises(ValueError, match="unknown layer"):
        bench.main(bench.Args(suite="layers", layers=("mambaa",), out_dir=tmp_path))


def test_gradient_modes_suite(tmp_path):
    bench.main(bench.Args(suite="gradient-modes", lengths=(8,), layers=("lstm",), out_dir=tmp_path, **TINY_LAYERS))
    rows = _check_layer_ratio_files(tmp_path, "gradient_modes", "gradient_modes_ratios")
    assert {(r["layer"], r["gradient"]) for r in rows} == {("LSTM", m) for m in ("bptt", "dsf", "truncated")}
    assert (tmp_path / "gradient_modes.md").is_file() and (tmp_path / "gradient_modes_gradient_modes.png").is_file()


def test_suite_all_tiny(tmp_path):
    bench.main(bench.Args(suite="all", lengths=(8,), precision_lengths=(64,), layers=("mingru", "gru", "fused-gru", "looped-gru"),
                          out_dir=tmp_path, **TINY_LAYERS, **TINY_AGENT))
    for name in ("layers.md", "layers_figure.png", "agent.md", "agent_eval.csv", "agent_latency.csv", "agent_train.csv",
                 "agent_throughput.png", "long_context.csv", "long_context_ratios.csv", "long_context.md",
                 "long_context_per_timestep.png", "precision.csv", "precision_error.png", "all.md", "all_targets.csv"):
        assert (tmp_path / name).stat().st_size > 0, name

    evaluation = _read(tmp_path / "agent_eval.csv")
    assert len(evaluation) == 3 * 3
    for backbone in TINY_AGENT["backbones"]:
        mine = [r for r in evaluation if r["backbone"] == backbone]
        baseline = float(mine[0]["env_steps_per_s"])
        assert mine[0]["method"].startswith("DT/CORL") and int(mine[0]["env_steps"]) == 8
        for r in mine:
            assert _close(r["env_steps_per_s"], float(r["env_steps"]) / float(r["seconds"]))
            assert _close(r["speedup"], float(r["env_steps_per_s"]) / baseline)
    latency = _read(tmp_path / "agent_latency.csv")
    assert {(r["backbone"], int(r["envs"]), r["mode"]) for r in latency} == {
        (b, n, m) for b in TINY_AGENT["backbones"] for n in (1, 3) for m in ("window", "recurrent")}
    window = {(r["backbone"], r["envs"]): float(r["ms_per_step"]) for r in latency if r["mode"] == "window"}
    for r in latency:
        assert _close(r["recurrent_speedup"], window[r["backbone"], r["envs"]] / float(r["ms_per_step"]))
    training = {r["backbone"]: r for r in _read(tmp_path / "agent_train.csv")}
    for r in training.values():
        assert _close(r["samples_per_s"], 4 / (float(r["ms_per_step"]) / 1e3))
        assert _close(r["vs_transformer"], float(training["transformer"]["ms_per_step"]) / float(r["ms_per_step"]))

    long_rows = [{**r, "K": int(r["K"]), "us_per_timestep": float(r["us_per_timestep"])}
                 for r in _read(tmp_path / "long_context.csv")]
    assert {(r["backbone"], r["K"], int(r["batch_size"])) for r in long_rows} == {
        (b, k, 1000 // k) for b in TINY_AGENT["backbones"] for k in (20, 1000)}
    for r in long_rows:
        assert _close(r["us_per_timestep"], float(r["ms_per_step"]) * 1e3 / (int(r["batch_size"]) * r["K"]))
    for ratio in _read(tmp_path / "long_context_ratios.csv"):
        mine = {r["K"]: r["us_per_timestep"] for r in long_rows if r["backbone"] == ratio["backbone"]}
        assert _close(ratio["ratio"], mine[1000] / mine[20])
    targets = _read(tmp_path / "all_targets.csv")
    assert len(targets) == 6 and [t["status"] in ("met", "not met") for t in targets[4:]] == [True, True]
    assert "Targets" in (tmp_path / "all.md").read_text()


def test_plots_skipped_with_a_hint_without_matplotlib(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    tables = [Table("precision", "error", [{"T": 8, "linear_chunked": 1e-7}])]
    assert write_plots("precision", tables, tmp_path, precision.plot) == []
    assert not list(tmp_path.iterdir())
    assert 'pip install -e ".[plots]"' in capsys.readouterr().out
