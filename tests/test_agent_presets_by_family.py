"""--preset dt for any Minari MuJoCo dataset: the DT paper's settings, its targets for the families it
lists, targets derived from the dataset's best return for the others; the known ids name a typo."""

from __future__ import annotations

import pytest

from agents.config import PRESETS, derive_dt_targets, parse_args
from envs.minari_ids import MINARI_MUJOCO_IDS, mujoco_id_problem
from sequence_models.training.cli import run_cli
from tests.script_loading import load_script


def test_dt_preset_takes_the_paper_settings_and_the_family_targets():
    ant = parse_args(["--preset", "dt", "--dataset", "mujoco/ant/medium-v0"])
    named = PRESETS["hopper-medium"]()
    assert ant.dataset == "mujoco/ant/medium-v0" and ant.eval_targets == ()  # derived at run time
    assert (ant.backbone, ant.context_len, ant.steps, ant.optim, ant.eval_mode) == (
        named.backbone, named.context_len, named.steps, named.optim, named.eval_mode)
    for family, targets in (("hopper", (3600.0, 1800.0)), ("halfcheetah", (12000.0, 6000.0)),
                            ("walker2d", (5000.0, 2500.0))):
        assert parse_args(["--preset", "dt", "--dataset", f"mujoco/{family}/expert-v0"]).eval_targets == targets
    given = parse_args(["--preset", "dt", "--dataset", "mujoco/hopper/medium-v0", "--eval-targets", "100"])
    assert given.eval_targets == (100.0,)


def test_derived_targets_are_the_best_return_and_half_of_it_below():
    assert derive_dt_targets(4000.0) == (4000.0, 2000.0)
    assert derive_dt_targets(-4.0) == (-4.0, -6.0)  # negative returns (Reacher): still the lower target


def test_known_ids_cover_the_families_and_typos_get_a_did_you_mean(capsys):
    families = {i.split("/")[1] for i in MINARI_MUJOCO_IDS}
    assert {"ant", "halfcheetah", "hopper", "humanoid", "invertedpendulum", "inverteddoublependulum", "pusher",
            "reacher", "swimmer", "walker2d"} <= families
    assert "did you mean 'mujoco/hopper/medium-v0'" in mujoco_id_problem("mujoco/hoper/medium-v0")
    assert mujoco_id_problem("mujoco/ant/medium-v1") is None  # a version this table does not know: Minari decides
    with pytest.raises(SystemExit) as stop:
        run_cli(load_script("train_agent").main, ["--preset", "dt", "--dataset", "mujoco/walker2d/meduim-v0"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "did you mean 'mujoco/walker2d/medium-v0'" in err


def test_dt_preset_on_a_family_without_paper_targets_derives_and_says_so(tmp_path, capsys):
    results = load_script("train_agent").main([
        "--preset", "dt", "--dataset", "builtin/inverteddoublependulum/mixed-v0", "--steps", "2", "--batch-size", "4",
        "--context-len", "4", "--eval-episodes", "1", "--eval-max-steps", "4", "--warmup-steps", "1",
        "--runs-dir", str(tmp_path), "--device", "cpu", "--no-progress", "--cpu-threads", "1",
        "backbone:transformer", "--backbone.d-model", "16", "--backbone.n-layers", "1"])
    assert "derived from the dataset's best return" in capsys.readouterr().out
    assert "derived from the dataset's best return" in results["targets_note"]
    high, low = (float(t) for t in results["final_score"])
    assert low == high - abs(high) / 2
