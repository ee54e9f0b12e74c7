"""The training core's guarantees, for every task (agent, language model in window and stream batching,
copying): exact resume, NaN stops the run with a finite last.pt, a taken name gets a new folder, the
folder lock, metrics without repeated steps after a crash, what a resume may change, and the one
weight-decay rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from agents.model import DecisionModel
from agents.run import train_agent
from sequence_models.backbone_configs import backbone_config
from sequence_models.tasks import copy_config, copy_training, lm_config, lm_training
from sequence_models.tasks.language_model import LanguageModel
from sequence_models.training.checkpoint import CheckpointError, load_checkpoint
from sequence_models.training.config import OptimConfig, override
from sequence_models.training.errors import TrainingDiverged
from sequence_models.training.optim import parameter_groups
from sequence_models.training.run_folder import RunFolder, RunFolderError
from tests.agent_helpers import tiny_config

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"
TEXT = SHAKESPEARE.read_text()[:6000] if SHAKESPEARE.is_file() else "To be, or not to be: that is the question.\n" * 140


@pytest.fixture
def corpus_dir(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "input.txt").write_text(TEXT)
    return folder


def lm_run_config(tmp_path, corpus_dir, batching: str, backbone: str = "lru", **overrides):
    config = lm_config.LMConfig(
        data_dir=str(corpus_dir), verify_data=False, batching=batching, seq_len=12, batch_size=3, eval_batch_size=4,
        eval_batches=2, backbone=backbone_config(backbone, d_model=8, n_layers=1, dropout=0.1))
    return override(config, **{**TINY_RUN, "runs_dir": str(tmp_path / "runs"), **overrides})


TINY_RUN = dict(device="cpu", progress=False, log_every=1, eval_every=2, checkpoint_every=2, warmup_steps=1,
                schedule="constant")


def copy_run_config(tmp_path, **overrides):
    config = copy_config.CopyConfig(seq_len=6, n_memorize=2, batch_size=4, eval_examples=8, test_examples=8,
                                      backbone=backbone_config("mingru", d_model=8, n_layers=1, dropout=0.1))
    return override(config, **{**TINY_RUN, "runs_dir": str(tmp_path / "runs"), **overrides})


def run_task(kind: str, config):
    return {"agent": lambda c: train_agent(c, quiet=True), "lm": lambda c: lm_training.run(c, quiet=True),
            "copy": lambda c: copy_training.run(c, quiet=True)}[kind](config)


def config_for(kind: str, tmp_path, corpus_dir, **overrides):
    if kind == "agent":
        return tiny_config(tmp_path, "mingru", **{"schedule": "constant", "log_every": 1, "checkpoint_every": 2,
                                                  **overrides})
    if kind.startswith("lm"):
        return lm_run_config(tmp_path, corpus_dir, kind.split("-")[1], **overrides)
    return copy_run_config(tmp_path, **overrides)


def last(tmp_path, name):
    return load_checkpoint(tmp_path / "runs" / name / "checkpoints" / "last.pt")


KINDS = ["agent", "lm-window", "lm-stream", "copy"]


@pytest.mark.parametrize("kind", KINDS)
def test_n_steps_resume_n_steps_equals_2n_steps(tmp_path, corpus_dir, kind):
    N = 3
    run_task(kind.split("-")[0], config_for(kind, tmp_path, corpus_dir, run_name="straight", steps=2 * N))
    run_task(kind.split("-")[0], config_for(kind, tmp_path, corpus_dir, run_name="split", steps=N))
    run_task(kind.split("-")[0], config_for(kind, tmp_path, corpus_dir, run_name="split", steps=2 * N, resume=True))
    a, b = last(tmp_path, "straight"), last(tmp_path, "split")
    assert a["step"] == b["step"] == 2 * N
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-6, rtol=0, msg=key)
    if kind == "lm-stream":  # the carried state came back, and the stream position
        assert a["task"]["position"] == b["task"]["position"] == 2 * N
        torch.testing.assert_close(a["task"]["carried_state"], b["task"]["carried_state"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["lm-window", "copy"])
def test_nan_stops_the_run_and_keeps_a_finite_checkpoint(tmp_path, corpus_dir, kind, monkeypatch):
    import torch.nn.functional as F

    real = F.cross_entropy
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        value = real(*args, **kwargs)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] > 2:
                return value * float("nan")
        return value

    monkeypatch.setattr(F, "cross_entropy", poisoned)
    config = config_for(kind, tmp_path, corpus_dir, run_name="r", steps=6)
    with pytest.raises(TrainingDiverged, match=r"step 3.*Last good checkpoint: .*last\.pt \(step 2\)"):
        run_task(kind.split("-")[0], config)
    good = last(tmp_path, "r")
    assert good["step"] == 2
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("kind", ["lm-window", "copy"])
def test_a_second_run_of_a_name_never_touches_the_first(tmp_path, corpus_dir, kind):
    first = run_task(kind.split("-")[0], config_for(kind, tmp_path, corpus_dir, run_name="same", steps=2))
    before = {p: p.read_bytes() for p in (tmp_path / "runs" / "same").rglob("*") if p.is_file()}
    second = run_task(kind.split("-")[0], config_for(kind, tmp_path, corpus_dir, run_name="same", steps=2))
    assert (first["run"], second["run"]) == ("same", "same-2")
    assert {p: p.read_bytes() for p in (tmp_path / "runs" / "same").rglob("*") if p.is_file()} == before


def test_resume_without_a_checkpoint_and_with_changed_settings(tmp_path, corpus_dir):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run_task("copy", copy_run_config(tmp_path, run_name="none", resume=True))
    run_task("copy", copy_run_config(tmp_path, run_name="r", steps=4))
    with pytest.raises(CheckpointError, match=r"lr: 0\.001 in the checkpoint, 1000000\.0 now"):
        run_task("copy", copy_run_config(tmp_path, run_name="r", steps=8, lr=1e6, resume=True))
    with pytest.raises(CheckpointError, match="at step 4, past the 3 steps"):
        run_task("copy", copy_run_config(tmp_path, run_name="r", steps=3, resume=True))
    resumed = run_task("copy", copy_run_config(tmp_path, run_name="r", steps=6, eval_examples=16, resume=True))
    assert resumed["steps"] == 6  # a longer run and another evaluation set are allowed


def test_metrics_hold_each_step_once_after_a_crash_and_resume(tmp_path, corpus_dir):
    run_task("copy", copy_run_config(tmp_path, run_name="r", steps=4))
    metrics = tmp_path / "runs" / "r" / "metrics.jsonl"
    # what a run killed after its step-4 checkpoint would have logged for steps 5 and 6
    with metrics.open("a") as f:
        for step in (5, 6):
            f.write(json.dumps({"step": step, "train/loss": 1.0}) + "\n")
    run_task("copy", copy_run_config(tmp_path, run_name="r", steps=8, resume=True))
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()
             if "train/loss" in json.loads(line)]
    assert steps == list(range(1, 9))


def test_a_locked_run_folder_refuses_a_second_writer(tmp_path):
    folder = tmp_path / "runs" / "busy"
    folder.mkdir(parents=True)
    with RunFolder(folder):
        with pytest.raises(RunFolderError, match=r"being written by process \d+"):
            RunFolder(folder).lock()
    RunFolder(folder).lock().unlock()  # free again once the first writer is done


def test_unwritable_runs_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunFolderError, match="not a folder|a path component is a file"):
        run_task("copy", copy_run_config(tmp_path, runs_dir=str(blocker / "runs")))


def _decayed_names(model: torch.nn.Module) -> set[str]:
    decay, _ = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for p in decay["params"]}


@pytest.mark.parametrize("task", ["agent", "lm", "copy"])
@pytest.mark.parametrize("backbone", ["lru", "mingru", "transformer", "gru", "mamba", "s4d"])
def test_no_weight_decay_on_recurrence_norms_embeddings_and_biases(task, backbone):
    fields = {"d_model": 16, "n_layers": 1}
    if backbone == "mingru":
        fields["learned_init_state"] = True
    config = backbone_config(backbone, **fields)
    model = (DecisionModel(9, 1, config) if task == "agent"
             else LanguageModel(11, config, tie_weights=task == "lm", positional_embedding=True))
    decayed = _decayed_names(model)
    assert decayed, "weight matrices are decayed"
    for name in decayed:
        leaf = name.rsplit(".", 1)[-1]
        assert leaf not in ("nu_log", "theta_log", "gamma_log", "initial_state", "bias", "A_log", "log_A_real",
                            "A_imag", "log_dt", "D"), name
        assert "norm" not in name and "embed" not in name, name
    assert all(p.ndim >= 2 for n, p in model.named_parameters() if n in decayed)


def test_every_task_optimises_with_the_rule(tmp_path, corpus_dir):
    """The trainers the tasks run build their AdamW from parameter_groups (LRU: nu_log undecayed)."""
    from sequence_models.training.trainer import Trainer

    model = LanguageModel(11, backbone_config("lru", d_model=8, n_layers=1))
    trainer = Trainer(model, lambda net: (torch.zeros(()), {}), OptimConfig(weight_decay=0.5), 10, torch.device("cpu"))
    nu = model.backbone.blocks[0].mixer.nu_log
    group = next(g for g in trainer.optimizer.param_groups if any(p is nu for p in g["params"]))
    assert group["weight_decay"] == 0.0
    assert math.isclose(max(g["weight_decay"] for g in trainer.optimizer.param_groups), 0.5)


def test_ctrl_c_writes_last_pt_prints_the_resume_command_and_resumes_exactly(tmp_path, corpus_dir, monkeypatch, capsys):
    from sequence_models.training import trainer as core
    from sequence_models.training.cli import run_cli
    from sequence_models.training.errors import TrainingInterrupted

    run_task("copy", copy_run_config(tmp_path, run_name="straight", steps=6))
    real_step = core.Trainer.train_step

    def interrupted_after_3(self):
        if self.step == 3:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(core.Trainer, "train_step", interrupted_after_3)
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step 3.*Resume with: python scripts/train_copy\.py "
                                                  r"--config .*split/config\.yaml --resume"):
        run_task("copy", copy_run_config(tmp_path, run_name="split", steps=6))
    assert last(tmp_path, "split")["step"] == 3  # written on the way out (the last cadence write was step 2)
    with pytest.raises(SystemExit) as e:
        run_cli(lambda argv: run_task("copy", copy_run_config(tmp_path, run_name="other", steps=6)))
    assert e.value.code == 130 and "Resume with" in capsys.readouterr().err
    monkeypatch.setattr(core.Trainer, "train_step", real_step)
    run_task("copy", copy_run_config(tmp_path, run_name="split", steps=6, resume=True))
    a, b = last(tmp_path, "straight"), last(tmp_path, "split")
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-6, rtol=0, msg=key)


def test_a_failing_checkpoint_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import errno

    from sequence_models.training.checkpoint import save_checkpoint

    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"step": 1, "model": {"w": torch.ones(3)}})

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*last\.pt: No space left on device"):
        save_checkpoint(path, {"step": 2, "model": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_checkpoints_of_another_format_version_are_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format_version": 1, "model": {}}, path)
    with pytest.raises(CheckpointError, match="format version 1"):
        load_checkpoint(path)


def test_a_failing_final_evaluation_keeps_the_model_and_records_the_error(tmp_path, monkeypatch):
    def broken(self, step, final):
        raise RuntimeError("the env crashed")

    monkeypatch.setattr(copy_training.CopyTask, "evaluate", broken)
    with pytest.raises(RuntimeError, match="the env crashed"):
        run_task("copy", copy_run_config(tmp_path, run_name="r", steps=3, eval_every=0))
    assert last(tmp_path, "r")["step"] == 3  # written before the final evaluation
    results = json.loads((tmp_path / "runs" / "r" / "results.json").read_text())
    assert results["error"] == "RuntimeError: the env crashed" and results["step"] == 3
