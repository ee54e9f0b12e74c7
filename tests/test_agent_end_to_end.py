"""Every backbone (and every gradient mode it supports) trains a few steps, evaluates and writes its run folder."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from agents.config import AgentConfig
from agents.run import train_agent
from sequence_models.backbone_configs import BACKBONE_CONFIGS
from sequence_models.training.config import ConfigError, from_plain, load_config_file
from tests.agent_helpers import tiny_config

CASES = [(name, "bptt") for name in BACKBONE_CONFIGS] + [
    (name, mode) for name in ("gru", "lstm", "rnn", "mingru", "lru") for mode in ("dsf", "truncated")
    if mode in BACKBONE_CONFIGS[name].gradient_modes
]


@pytest.mark.parametrize("name,gradient", CASES)
def test_backbone_end_to_end(tmp_path, name, gradient):
    config = tiny_config(tmp_path, name, gradient, eval_mode="recurrent" if name != "lstm" else "window")
    results = train_agent(config, quiet=True)
    run_dir = tmp_path / "runs" / results["run"]
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["backbone"] == name and on_disk["gradient"] == gradient and on_disk["steps"] == config.steps
    assert set(on_disk["final_score"]) == {"9000", "3000"} and set(on_disk["best_score"]) == {"9000", "3000"}
    for target in on_disk["final"]["targets"]:
        assert len(target["returns"]) == 2 and len(target["normalized"]) == 2
        assert all(1 <= n <= 12 for n in target["lengths"])
    assert on_disk["reference"] and on_disk["wall_time_s"] > 0
    assert (run_dir / "checkpoints" / "last.pt").is_file() and (run_dir / "checkpoints" / "best.pt").is_file()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s"} <= set(lines[0])
    assert any(name.startswith("events.out.tfevents") for name in (p.name for p in run_dir.iterdir()))
    # config.yaml re-creates the same config
    document = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert document["task"] == "agent"
    assert from_plain(AgentConfig, document["config"]).backbone == config.backbone
    assert load_config_file(run_dir / "config.yaml", AgentConfig, "agent") == dataclasses.replace(
        config, run=dataclasses.replace(config.run, run_name=results["run"]))


def test_cli_default_parses_and_presets_map_to_minari_ids():
    from agents.config import PRESETS, parse_args

    config = parse_args([])
    assert config.preset == "quick" and config.backbone.name == "mingru"
    hopper = parse_args(["--preset", "hopper-medium", "--steps", "7"])
    assert hopper.dataset == "mujoco/hopper/medium-v0" and hopper.steps == 7 and hopper.eval_targets == (3600.0, 1800.0)
    assert (hopper.context_len, hopper.backbone.d_model, hopper.backbone.n_layers, hopper.optim.lr, hopper.batch_size) == (20, 128, 3, 1e-4, 64)
    swapped = parse_args(["backbone:mingru", "--backbone.expansion", "1.5"])
    assert swapped.backbone.name == "mingru" and swapped.backbone.expansion == 1.5
    assert {f"{e}-{q}" for e in ("hopper", "halfcheetah", "walker2d") for q in ("simple", "medium", "expert")} <= set(PRESETS)


def shape(backbone) -> tuple:
    return backbone.d_model, backbone.n_layers, backbone.dropout


def test_a_swapped_backbone_keeps_the_presets_shape_unless_a_flag_sets_it():
    """backbone:NAME for another backbone than the preset's: the same d_model, n_layers and dropout."""
    from agents.config import parse_args

    assert shape(parse_args([]).backbone) == (64, 2, 0.0)
    transformer = parse_args(["backbone:transformer"]).backbone
    assert transformer.name == "transformer" and shape(transformer) == (64, 2, 0.0)
    assert shape(parse_args(["--preset", "dt", "backbone:mingru"]).backbone) == (128, 3, 0.1)
    assert shape(parse_args(["backbone:lru", "--backbone.n-layers", "4", "--backbone.dropout=0.2"]).backbone) == (
        64, 4, 0.2)


def test_a_swapped_backbone_that_cannot_take_the_presets_shape_says_why():
    from agents.config import parse_args

    with pytest.raises(ConfigError, match=r"^backbone:transformer with the preset's d_model=64.*multiple of n_heads"):
        parse_args(["backbone:transformer", "--backbone.n-heads", "128"])


@pytest.mark.parametrize(
    "argv,message",
    [
        (["backbone:transformer", "--backbone.gradient", "dsf"], "dsf"),
        (["--context-len", "0"], "context_len"),
        (["--steps", "-5"], "steps"),
    ],
)
def test_cli_rejects_flags_that_do_not_fit(argv, message, capsys):
    from agents.config import parse_args

    with pytest.raises((SystemExit, ConfigError)) as e:
        parse_args(argv)
    assert message in str(e.value) + capsys.readouterr().err


def test_evaluate_agent_script_reads_a_run_folder(tmp_path):
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_evaluate_agent", Path(__file__).parent.parent / "scripts" / "evaluate_agent.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # dataclasses look their module up while building Args
    spec.loader.exec_module(script)
    results = train_agent(tiny_config(tmp_path, run_name="run"), quiet=True)
    run_dir = tmp_path / "runs" / results["run"]
    summary = script.main([str(run_dir), "--targets", "5000", "--episodes", "3", "--mode", "window", "--cpu-threads", "0"])
    assert summary["checkpoint"].endswith("best.pt") and summary["mode"] == "window"
    assert len(summary["targets"]) == 1 and len(summary["targets"][0]["returns"]) == 3
    assert (run_dir / "eval-best-window.json").is_file()


def test_the_final_evaluation_runs_final_eval_episodes(tmp_path, monkeypatch):
    """The run's score (the evaluation after the last step) may use more episodes than the curve's evaluations."""
    import agents.run

    asked = []
    evaluate = agents.run.run_evaluation
    monkeypatch.setattr(agents.run, "run_evaluation",
                        lambda *a, **kw: asked.append(kw["episodes"]) or evaluate(*a, **kw))
    results = train_agent(tiny_config(tmp_path, eval_every=2, final_eval_episodes=3), quiet=True)
    assert asked == [None, 3] and [len(t["returns"]) for t in results["final"]["targets"]] == [3, 3]
