"""The two training scripts end to end on tiny settings: files written, checkpoint loadable without
code execution, resume continues, the markdown table printed."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from tests.script_loading import load_script

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _check_run(run_dir: Path, steps: int):
    assert (run_dir / "config.yaml").is_file() and yaml.safe_load((run_dir / "config.yaml").read_text())
    assert list(run_dir.glob("events.out.tfevents.*"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows and max(r["step"] for r in rows) == steps
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == steps and "model" in ckpt and "optimizer" in ckpt
    assert not (run_dir / "checkpoints" / "last.pt.tmp").exists()
    return json.loads((run_dir / "results.json").read_text())


def test_train_copy_runs_and_resumes(tmp_path, capsys):
    script = load_script("train_copy")
    flags = ["--runs-dir", str(tmp_path), "--run-name", "c", "--seq-len", "8", "--n-memorize", "2",
             "--batch-size", "8", "--log-every", "2", "--eval-every", "3", "--eval-examples", "16",
             "--test-examples", "16", "backbone:mingru", "--backbone.d-model", "16", "--backbone.n-layers", "1"]
    args = script.parse_args(["--steps", "3", *flags])
    assert args.backbone.expansion == 6.0  # the preset's backbone fields survive `backbone:mingru`
    results = script.main(args)
    _check_run(tmp_path / "c", 3)
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert "| c | mingru | 1 |" in capsys.readouterr().out
    script.main(script.parse_args(["--steps", "6", "--resume", *flags]))
    _check_run(tmp_path / "c", 6)
    paper = script.parse_args(["--preset", "mingru-paper"])
    assert (paper.seq_len, paper.n_memorize, paper.vocab_size) == (4096, 16, 16)
    assert (paper.backbone.d_model, paper.backbone.n_layers, paper.backbone.expansion) == (64, 3, 6.0)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared corpora not found at {SHARED}")
@pytest.mark.parametrize("batching", ["window", "stream"])
def test_train_lm_runs_and_resumes(tmp_path, capsys, batching):
    script = load_script("train_lm")
    flags = ["--runs-dir", str(tmp_path), "--run-name", "l", "--data-dir", str(SHARED / "tinyshakespeare"),
             "--batching", batching, "--seq-len", "16", "--batch-size", "4", "--eval-batch-size", "2048",
             "--log-every", "2", "--eval-every", "2", "--eval-batches", "1", "--warmup-steps", "1",
             "backbone:lru", "--backbone.d-model", "8", "--backbone.n-layers", "1"]
    results = script.main(script.parse_args(["--steps", "2", *flags]))
    _check_run(tmp_path / "l", 2)
    assert "test_loss" not in results  # Tiny Shakespeare has train and valid only
    assert abs(results["valid_bpc"] - results["valid_loss"] / math.log(2)) < 1e-12
    assert "| l | tinyshakespeare | lru | bptt | 1 x 8 |" in capsys.readouterr().out
    script.main(script.parse_args(["--steps", "4", "--resume", *flags]))
    _check_run(tmp_path / "l", 4)


def test_train_lm_presets():
    script = load_script("train_lm")
    nano = script.parse_args(["--preset", "shakespeare-char"])
    assert nano.backbone.name == "transformer" and (nano.backbone.d_model, nano.backbone.n_layers) == (384, 6)
    assert (nano.seq_len, nano.batch_size, nano.steps) == (256, 64, 5000)
    small = script.parse_args(["--steps", "7", "backbone:minlstm", "--backbone.d-model", "24"])
    assert small.preset == "cpu-small" and small.steps == 7 and small.backbone.d_model == 24
    from sequence_models.backbone import BACKBONE_CONFIGS

    if "gru" in BACKBONE_CONFIGS:
        ptb = script.parse_args(["--preset", "dsf-ptb"])
        assert (ptb.backbone.name, ptb.backbone.d_model, ptb.backbone.n_layers) == ("gru", 256, 1)
        assert (ptb.seq_len, ptb.batch_size, ptb.lr, ptb.weight_decay, ptb.epochs) == (64, 128, 1e-3, 1e-4, 30)
        assert (ptb.schedule, ptb.lr_step_epochs, ptb.lr_gamma) == ("step", 10, 0.1)
    else:
        with pytest.raises(SystemExit, match="GRU backbone"):
            script.parse_args(["--preset", "dsf-ptb"])


def test_train_lm_schedules():
    script = load_script("train_lm")
    ptb = script.Args(schedule="step", warmup_steps=0, lr_step_epochs=10, lr_gamma=0.1, steps=0, epochs=30)
    spe = 7  # batches per epoch
    factors = [script.lr_factor(s, ptb, 30 * spe, spe) for s in (0, 10 * spe - 1, 10 * spe, 20 * spe, 30 * spe - 1)]
    assert factors == pytest.approx([1.0, 1.0, 0.1, 0.01, 0.01])
    cosine = script.Args(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert script.lr_factor(0, cosine, 110, 50) == pytest.approx(0.1)  # warm-up from lr / warmup_steps
    assert script.lr_factor(10, cosine, 110, 50) == pytest.approx(1.0)
    assert script.lr_factor(110, cosine, 110, 50) == pytest.approx(0.1)
