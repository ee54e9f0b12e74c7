"""Exact resume, and bad input: wrong shapes, damaged checkpoints, NaN loss, no reference score, unsafe pickles."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import agents.trainer
from agents.checkpoints import load_agent
from agents.run import train_agent
from sequence_models.training.checkpoint import CheckpointError, load_checkpoint
from sequence_models.training.config import override
from sequence_models.training.errors import TrainingDiverged
from tests.agent_helpers import tiny_config

N = 3


def final_state(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


@pytest.mark.parametrize("backbone", ["mingru", "transformer"])
def test_resume_equals_an_uninterrupted_run(tmp_path, backbone):
    base = tiny_config(tmp_path, backbone, schedule="constant", warmup_steps=4, checkpoint_every=N, log_every=1)
    base = dataclasses.replace(base, backbone=dataclasses.replace(base.backbone, dropout=0.1))  # RNG state matters
    straight = train_agent(override(base, run_name="straight", steps=2 * N), quiet=True)
    train_agent(override(base, run_name="split", steps=N), quiet=True)
    resumed = train_agent(override(base, run_name="split", steps=2 * N, resume=True), quiet=True)
    a, b = final_state(tmp_path / "runs" / "straight"), final_state(tmp_path / "runs" / "split")
    assert a["step"] == b["step"] == 2 * N
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-6, rtol=0, msg=key)
    for s_a, s_b in zip(a["trainer"]["optimizer"]["state"].values(), b["trainer"]["optimizer"]["state"].values()):
        torch.testing.assert_close(s_a["exp_avg_sq"], s_b["exp_avg_sq"], atol=1e-6, rtol=0)
    assert torch.equal(a["task"]["sampler"]["generator"], b["task"]["sampler"]["generator"])
    assert straight["final_score"] == pytest.approx(resumed["final_score"], abs=1e-6)
    # the metrics of both halves land in one metrics.jsonl, each training step once, as in the straight run
    def train_steps(name):
        rows = map(json.loads, (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines())
        return [r["step"] for r in rows if "train/loss" in r]

    assert train_steps("split") == train_steps("straight") == list(range(1, 2 * N + 1))


def test_checkpoint_for_other_shapes_is_refused_by_name(tmp_path):
    config = tiny_config(tmp_path, run_name="run")
    train_agent(config, quiet=True)
    last = tmp_path / "runs" / "run" / "checkpoints" / "last.pt"
    payload = load_checkpoint(last)
    payload["dataset_info"]["obs_dim"] = 17
    payload["dataset_info"]["act_dim"] = 6
    torch.save(payload, last)
    with pytest.raises(CheckpointError, match=r"observations of size 17 and actions of size 6.*size 9 and actions of size 1"):
        train_agent(override(config, resume=True, steps=6), quiet=True)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_agent(last)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_gives_a_clear_error_naming_the_file(tmp_path, damage):
    config = tiny_config(tmp_path, run_name="run")
    train_agent(config, quiet=True)
    last = tmp_path / "runs" / "run" / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=str(last).replace(".", r"\.")):
        train_agent(override(config, resume=True, steps=6), quiet=True)
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_agent(last)


class Arbitrary:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "dataset_info": {}, "payload": Arbitrary()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_agent(path)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_loss = agents.trainer.masked_action_loss
    calls = {"n": 0}

    def poisoned(predicted, batch):
        calls["n"] += 1
        loss = real_loss(predicted, batch)
        return loss * float("nan") if calls["n"] > 2 else loss

    monkeypatch.setattr(agents.trainer, "masked_action_loss", poisoned)
    config = tiny_config(tmp_path, run_name="run", steps=6, log_every=1, checkpoint_every=2)
    with pytest.raises(TrainingDiverged, match=r"step 3.*Last good checkpoint: .*last\.pt \(step 2\)"):
        train_agent(config, quiet=True)
    good = load_checkpoint(tmp_path / "runs" / "run" / "checkpoints" / "last.pt")
    assert good["step"] == 2
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())


def test_dataset_without_reference_reports_raw_returns_and_why(tmp_path, monkeypatch):
    import envs.trajectory_store
    from envs.reference_scores import NoReferenceScoreError

    def no_reference(*args, **kwargs):
        raise NoReferenceScoreError("no reference score for InvertedDoublePendulum-v5 (test)")

    monkeypatch.setattr(envs.trajectory_store, "find_reference_score", no_reference)
    results = train_agent(tiny_config(tmp_path, run_name="run"), quiet=True)
    assert results["reference"] is None and "no reference score" in results["note"]
    target = results["final"]["targets"][0]
    assert "normalized" not in target and results["final_score"]["9000"] == pytest.approx(target["return_mean"])


def test_resume_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train_agent(tiny_config(tmp_path, run_name="nothing", resume=True), quiet=True)


def test_a_second_run_of_the_same_name_gets_a_new_folder(tmp_path):
    first = train_agent(tiny_config(tmp_path, steps=2), quiet=True)
    second = train_agent(tiny_config(tmp_path, steps=2), quiet=True)
    assert second["run"] == first["run"] + "-2"


def test_resume_with_another_model_names_the_differences(tmp_path):
    config = tiny_config(tmp_path, run_name="run")
    train_agent(config, quiet=True)
    other = override(config, resume=True, steps=6, context_len=7)
    with pytest.raises(CheckpointError, match=r"context_len: 4 in the checkpoint, 7 now.*--config .*config\.yaml --resume"):
        train_agent(other, quiet=True)
