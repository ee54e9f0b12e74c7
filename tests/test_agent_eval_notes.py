"""The note a run prints when its backbone's state drifts past its training windows (S4D), and only then."""

from __future__ import annotations

from agents.config import AgentConfig
from agents.run import recurrent_eval_note
from sequence_models.backbone_configs import backbone_config
from tests.script_loading import load_script


def test_the_note_names_s4d_on_short_windows_evaluated_recurrently_and_nothing_else():
    s4d = AgentConfig(backbone=backbone_config("s4d", d_model=16, n_layers=1), context_len=20)
    note = recurrent_eval_note(s4d, 250)
    assert note.startswith("note: s4d trained on 20-step windows") and "--eval-mode window" in note
    assert "--context-len 250 --segment-start fit" in note
    assert recurrent_eval_note(AgentConfig(backbone=s4d.backbone, context_len=250), 250) == ""  # whole episodes
    assert recurrent_eval_note(AgentConfig(backbone=s4d.backbone, eval_mode="window"), 250) == ""
    assert recurrent_eval_note(AgentConfig(context_len=20), 250) == ""  # minGRU: recurrent matches window


def test_a_short_window_s4d_run_prints_the_note(tmp_path, capsys):
    load_script("train_agent").main([
        "--steps", "2", "--batch-size", "4", "--context-len", "4", "--eval-episodes", "1", "--eval-max-steps", "4",
        "--runs-dir", str(tmp_path), "--device", "cpu", "--no-progress", "--cpu-threads", "1",
        "backbone:s4d", "--backbone.d-model", "16", "--backbone.n-layers", "1"])
    assert "note: s4d trained on 4-step windows and evaluated recurrently" in capsys.readouterr().out
