"""The claims suite end to end on tiny budgets (seconds): every claim runs, and the table, CSVs and
learning-curve PNGs are written. The verdicts of such budgets mean nothing; tests/test_claims.py
(marked slow) asserts them from real runs of the presets."""

import csv
import json

import pytest
import yaml

from sequence_models.training.provenance import code_version
from tests.script_loading import load_script


@pytest.fixture
def tiny_shakespeare(tmp_path):
    """A few kilobytes standing in for Tiny Shakespeare (the suite's --data-dir), so no download."""
    folder = tmp_path / "tinyshakespeare"
    folder.mkdir()
    lines = ["First Citizen:", "Before we proceed any further, hear me speak.", "All:", "Speak, speak.", ""]
    (folder / "input.txt").write_text("\n".join(lines * 60))
    return folder


def test_claims_suite_writes_the_table_csvs_and_plots(tmp_path, tiny_shakespeare, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    out = tmp_path / "claims"
    module = load_script("claims")
    module.main(["--claim", "all", "--smoke", "--out-dir", str(out), "--data-dir", str(tiny_shakespeare),
                 "--agent-seeds", "0", "--agent-backbones", "mingru", "transformer", "--no-dsf-linear", "--jobs", "1",
                 "--device", "cpu"])
    rows = list(csv.DictReader((out / "claims.csv").open()))
    assert list(rows[0]) == ["claim", "paper", "ours", "verdict", "converged"]
    claims = [r["claim"] for r in rows]
    assert any(c.startswith("mingru: 3 layers") for c in claims)
    assert any(c.startswith("gru: valid loss BPTT < DSF < truncated") for c in claims)
    assert any(c.startswith("minGRU no worse than the transformer") for c in claims)
    assert any(c.startswith("mingru: whole-episode context") for c in claims)
    assert {"mingru within 5 points of the transformer (K=20)", "mingru within 5 points of the transformer (K=250)"} <= set(
        claims)
    assert any(c.startswith("mingru: recurrent evaluation no worse than window") for c in claims)
    assert all(r["verdict"] in ("holds", "does not hold", "reported") for r in rows)
    assert all(r["converged"] == "yes" or r["converged"].startswith("no: ") for r in rows)
    for claim in ("copying", "dsf", "shakespeare", "agents"):
        runs = list(csv.DictReader((out / f"claims_{claim}_runs.csv").open()))
        assert runs and all(r["flat (last quarter)"] in ("yes", "no") for r in runs)
        assert all(int(r["run s"]) >= 0 for r in runs)
        assert {r["code"] for r in runs} == {code_version()}  # the commit each run was trained at
        assert (out / f"claims_{claim}.png").stat().st_size > 1000
    agent_runs = list(csv.DictReader((out / "claims_agents_runs.csv").open()))
    assert {r["context"] for r in agent_runs} == {"20", "250"}  # K=20 and whole episodes (the 250-step limit)
    assert {r["run"] for r in agent_runs} == {"mingru K=20 s0", "transformer K=20 s0", "mingru K=250 s0",
                                              "transformer K=250 s0"}
    window = json.loads((out / "runs" / "mingru-K20-s0" / "eval-last-window.json").read_text())
    assert window["mode"] == "window" and len(window["targets"]) == 1
    text = (out / "claims.md").read_text()
    for run in ("copy-mingru-1-layer", "dsf-gru-dsf", "shakespeare-mingru", "mingru-K20-s0"):  # --device reached each
        assert yaml.safe_load((out / "runs" / run / "config.yaml").read_text())["config"]["run"]["device"] == "cpu"
    assert text.startswith("# Claims at CPU scale (SMOKE") and "\ndevice: cpu (" in text
    assert "SMOKE" in text and "| claim | paper | ours | verdict | converged |" in text
    assert "- copying: 10 runs, " in text and "- agents: 4 runs, " in text and "at --jobs 1" in text  # the cost lines


def test_a_finished_run_is_read_back_and_a_changed_setting_trains_again(tmp_path, capsys):
    from sequence_models.benchmarks.claim_runs import train_once
    from sequence_models.tasks import copy_config, copy_training
    from sequence_models.training.config import override

    config = override(copy_config.PRESETS["claims-copy"](), seq_len=4, n_memorize=2, steps=3, batch_size=4,
                      eval_every=3, eval_examples=8, test_examples=8, warmup_steps=1)
    first = train_once(copy_training.run, config, tmp_path, "r")
    again = train_once(copy_training.run, override(config, eval_every=1, log_every=1), tmp_path, "r")  # cadence only
    assert again == first and "finished earlier" in capsys.readouterr().out
    changed = train_once(copy_training.run, override(config, lr=1e-4), tmp_path, "r")
    assert changed["run_dir"] != first["run_dir"] and sorted(p.name for p in tmp_path.iterdir()) == ["r", "r-2"]
    capsys.readouterr()
    # r holds other settings: the changed run is found in r-2 the next time, not trained into r-3
    assert train_once(copy_training.run, override(config, lr=1e-4), tmp_path, "r") == changed
    assert f"read from {tmp_path / 'r-2'}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "r-2"]


def test_a_field_added_since_at_its_default_is_no_difference(tmp_path, capsys):
    from sequence_models.benchmarks.claim_runs import finished_run, train_once
    from sequence_models.tasks import copy_config, copy_training
    from sequence_models.training.config import override

    config = override(copy_config.PRESETS["claims-copy"](), seq_len=4, n_memorize=2, steps=2, batch_size=4,
                      eval_every=2, eval_examples=8, test_examples=8, warmup_steps=1)
    first = train_once(copy_training.run, config, tmp_path, "r")
    config_yaml = tmp_path / "r" / "config.yaml"
    document = yaml.safe_load(config_yaml.read_text())
    del document["config"]["backbone"]["norm"]  # as written before the field existed
    config_yaml.write_text(yaml.safe_dump(document))
    assert finished_run(tmp_path / "r", override(config, run_name="r", runs_dir=str(tmp_path))) == first
    document["config"]["backbone"]["gone"] = 1  # a field since removed: a different run
    config_yaml.write_text(yaml.safe_dump(document))
    assert finished_run(tmp_path / "r", config) is None


def test_runs_in_worker_processes_give_what_one_process_gives(tmp_path):
    from sequence_models.benchmarks.claim_runs import train_many
    from sequence_models.tasks import copy_config, copy_training
    from sequence_models.training.config import override

    config = override(copy_config.PRESETS["claims-copy"](), seq_len=4, n_memorize=2, steps=3, batch_size=4,
                      eval_every=3, eval_examples=8, test_examples=8, warmup_steps=1)
    jobs = [(f"r{seed}", copy_training.run, override(config, seed=seed)) for seed in (0, 1)]
    parallel = train_many(jobs, tmp_path / "parallel", workers=2)
    alone = train_many(jobs, tmp_path / "alone", workers=1)
    for name in ("r0", "r1"):
        assert parallel[name]["test_accuracy"] == alone[name]["test_accuracy"]
        assert parallel[name]["valid_loss"] == alone[name]["valid_loss"]


def test_the_language_claims_evaluate_one_estimator_along_their_curves():
    """The convergence check compares the curve's last quarter: every point must be the whole validation split,
    as the final evaluation is (a first-N-batches estimate before it read 0.023-0.055 nats low)."""
    from sequence_models.tasks.lm_config import PRESETS

    for name in ("claims-dsf", "claims-shakespeare"):
        assert PRESETS[name]().eval_batches == 0, name


def test_a_run_records_the_commit_it_was_trained_at():
    import subprocess

    from sequence_models.training import provenance

    commit = subprocess.run(["git", "-C", str(provenance.CHECKOUT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    if not commit:
        pytest.skip("not a git checkout: the version is the installed package's")
    assert code_version() in (commit, f"{commit}-dirty")
