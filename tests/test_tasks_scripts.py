"""The language-model and copying CLIs end to end on tiny settings: files written, checkpoint loadable
without code execution, resume continues, config.yaml re-runs, the markdown table printed."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from sequence_models.tasks import lm_config
from sequence_models.tasks.copy_config import parse_args as copy_parse_args
from sequence_models.training.optim import lr_factor
from sequence_models.training.config import OptimConfig
from tests.script_loading import load_script

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared corpora not found at {SHARED}")


def _check_run(run_dir: Path, steps: int, task: str):
    document = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert document["task"] == task and document["config"]["run"]["run_name"] == run_dir.name
    assert list(run_dir.glob("events.out.tfevents.*"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows and max(r["step"] for r in rows) == steps
    train_steps = [r["step"] for r in rows if "train/loss" in r]
    assert len(train_steps) == len(set(train_steps))  # each step once, across a resume too
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == steps and "model" in ckpt and "optimizer" in ckpt["trainer"]
    assert not list((run_dir / "checkpoints").glob("*.tmp"))
    return json.loads((run_dir / "results.json").read_text())


COPY_FLAGS = ["--seq-len", "8", "--n-memorize", "2", "--batch-size", "8", "--log-every", "2", "--eval-every", "3",
              "--eval-examples", "16", "--test-examples", "16", "--device", "cpu", "backbone:mingru",
              "--backbone.d-model", "16", "--backbone.n-layers", "1"]


def test_train_copy_runs_resumes_and_reruns_its_config(tmp_path, capsys):
    script = load_script("train_copy")
    flags = ["--runs-dir", str(tmp_path), "--run-name", "c", *COPY_FLAGS]
    args = copy_parse_args(["--steps", "3", *flags])
    assert args.backbone.expansion == 6.0  # the preset's backbone fields survive `backbone:mingru`
    results = script.main(["--steps", "3", *flags])
    _check_run(tmp_path / "c", 3, "copy")
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert "| c | mingru | 1 |" in capsys.readouterr().out
    script.main(["--steps", "6", "--resume", *flags])
    _check_run(tmp_path / "c", 6, "copy")
    again = script.main(["--config", str(tmp_path / "c" / "config.yaml"), "--run-name", "c"])
    assert again["run"] == "c-2" and again["steps"] == 6
    paper = copy_parse_args(["--preset", "mingru-paper"])
    assert (paper.seq_len, paper.n_memorize, paper.vocab_size) == (4096, 16, 16)
    assert (paper.backbone.d_model, paper.backbone.n_layers, paper.backbone.expansion) == (64, 3, 6.0)


@needs_shared
@pytest.mark.parametrize("batching", ["window", "stream"])
def test_train_lm_runs_and_resumes(tmp_path, capsys, batching):
    script = load_script("train_lm")
    flags = ["--runs-dir", str(tmp_path), "--run-name", "l", "--data-dir", str(SHARED / "tinyshakespeare"),
             "--batching", batching, "--seq-len", "16", "--batch-size", "4", "--eval-batch-size", "2048",
             "--log-every", "2", "--eval-every", "2", "--eval-batches", "1", "--warmup-steps", "1", "--device", "cpu",
             "backbone:lru", "--backbone.d-model", "8", "--backbone.n-layers", "1"]
    results = script.main(["--steps", "2", *flags])
    _check_run(tmp_path / "l", 2, "lm")
    assert "test_loss" not in results  # Tiny Shakespeare has train and valid only
    assert abs(results["valid_bpc"] - results["valid_loss"] / math.log(2)) < 1e-12
    assert "| l | tinyshakespeare | lru | bptt | 1 x 8 |" in capsys.readouterr().out
    script.main(["--steps", "4", "--resume", *flags])
    _check_run(tmp_path / "l", 4, "lm")


def test_train_lm_presets():
    nano = lm_config.parse_args(["--preset", "shakespeare-char"])
    assert nano.backbone.name == "transformer" and (nano.backbone.d_model, nano.backbone.n_layers) == (384, 6)
    assert (nano.seq_len, nano.batch_size, nano.steps) == (256, 64, 5000)
    small = lm_config.parse_args(["--steps", "7", "backbone:minlstm", "--backbone.d-model", "24"])
    assert small.preset == "cpu-small" and small.steps == 7 and small.backbone.d_model == 24
    ptb = lm_config.parse_args(["--preset", "dsf-ptb"])
    assert (ptb.backbone.name, ptb.backbone.d_model, ptb.backbone.n_layers) == ("gru", 256, 1)
    assert (ptb.seq_len, ptb.batch_size, ptb.optim.lr, ptb.optim.weight_decay, ptb.epochs) == (64, 128, 1e-3, 1e-4, 30)
    assert (ptb.optim.schedule, ptb.optim.lr_step_epochs, ptb.optim.lr_gamma) == ("step", 10, 0.1)


def test_schedules():
    step = OptimConfig(schedule="step", warmup_steps=0, lr_step_epochs=10, lr_gamma=0.1)
    spe = 7  # batches per epoch
    factors = [lr_factor(s, step, 30 * spe, spe) for s in (0, 10 * spe - 1, 10 * spe, 20 * spe, 30 * spe - 1)]
    assert factors == pytest.approx([1.0, 1.0, 0.1, 0.01, 0.01])
    cosine = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cosine, 110, 50) == pytest.approx(0.1)  # warm-up from lr / warmup_steps
    assert lr_factor(10, cosine, 110, 50) == pytest.approx(1.0)
    assert lr_factor(110, cosine, 110, 50) == pytest.approx(0.1)
    assert lr_factor(50, OptimConfig(schedule="constant", warmup_steps=10), 110) == 1.0
