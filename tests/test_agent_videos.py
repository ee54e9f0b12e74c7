"""Rollout videos (--eval-video in training, --video in evaluate_agent): files in runs/NAME/videos/ that
decode with one frame per step plus the reset frame, named with target, step, return and score, and
the replayed episodes are the evaluated ones (same seeds, same policy)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from agents.run import train_agent
from tests.agent_helpers import tiny_config
from tests.script_loading import load_script

imageio = pytest.importorskip("imageio.v3")


def _frames(path) -> int:
    return sum(1 for _ in imageio.imiter(path))


def test_training_writes_videos_that_decode_and_match_the_evaluation(tmp_path):
    config = tiny_config(tmp_path, eval_video=1, eval_max_steps=6)
    results = train_agent(config, quiet=True)
    run = tmp_path / "runs" / results["run"]
    videos = sorted((run / "videos").iterdir())
    assert len(videos) == len(config.eval_targets)  # one per target
    for path, target in zip(sorted(videos, key=lambda p: -float(re.search(r"target(-?[0-9.]+)-", p.name)[1])),
                            results["final"]["targets"]):
        name = re.fullmatch(r"step4-target([-0-9.]+)-ep0-return([-0-9.]+)-norm([-0-9.]+)\.(mp4|gif)", path.name)
        assert name, path.name
        assert float(name[1]) == target["target"]
        assert float(name[2]) == pytest.approx(target["returns"][0], abs=0.05)  # the replay is evaluated episode 0
        assert _frames(path) == target["lengths"][0] + 1  # the reset frame and one per step
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval/video_env_steps_per_s" in row for row in metrics)


def test_evaluate_agent_video_flag(tmp_path, capsys):
    results = train_agent(tiny_config(tmp_path, eval_max_steps=5), quiet=True)
    run = tmp_path / "runs" / results["run"]
    assert not (run / "videos").exists()  # off by default
    summary = load_script("evaluate_agent").main([str(run), "--video", "1", "--episodes", "1", "--targets", "500"])
    [path] = summary["videos"]
    assert "eval-best-step4-target500-ep0-" in path
    assert _frames(path) == summary["targets"][0]["lengths"][0] + 1


def test_frame_strip_spreads_frames_over_the_episode():
    from agents.videos import frame_strip

    frames = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1).repeat(3, axis=3)
    strip = frame_strip(frames, count=5)
    assert strip.shape == (1, 5, 3) and strip[0, :, 0].tolist() == [0, 5, 10, 14, 19]


def test_without_ffmpeg_videos_are_gifs_with_every_frame(tmp_path, monkeypatch):
    from agents import videos

    monkeypatch.setattr(videos, "video_format", lambda: "gif")
    frames = np.zeros((7, 16, 16, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(7, dtype=np.uint8)[:, None, None] * 30  # distinct frames (GIF merges repeats)
    path = videos.write_video(frames, tmp_path / "step1-target5-ep0-return1.5", fps=20)
    assert path.name == "step1-target5-ep0-return1.5.gif" and _frames(path) == 7
