"""Faults a run survives, for every run type (agent, language model, copying): kill -9 then --resume
gives the uninterrupted run's weights (copying in the default run; the LM stream and the agent, whose
resume is exact in-process too (test_training_core.py), under -m slow); a second writer of a running run is refused; a checkpoint write
that fails leaves the last good checkpoint; truncated and malicious checkpoints are refused by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sequence_models.training.checkpoint import CheckpointError, load_checkpoint
from tests.test_training_core import config_for, corpus_dir, last, run_task  # noqa: F401 - corpus_dir is a fixture

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "copy": ["train_copy.py", "--seq-len", "6", "--n-memorize", "2", "--batch-size", "4", "--eval-examples", "8",
             "--test-examples", "8", "--eval-every", "1000", "--log-every", "1", "--checkpoint-every", "1",
             "--warmup-steps", "1", "--schedule", "constant", "--device", "cpu", "--no-progress",
             "backbone:mingru", "--backbone.d-model", "8", "--backbone.n-layers", "1", "--backbone.dropout", "0.1"],
    "lm-stream": ["train_lm.py", "--no-verify-data", "--batching", "stream", "--seq-len", "12", "--batch-size", "3",
                  "--eval-batch-size", "4", "--eval-every", "1000", "--log-every", "1", "--checkpoint-every", "1",
                  "--warmup-steps", "1", "--schedule", "constant", "--device", "cpu", "--no-progress",
                  "backbone:lru", "--backbone.d-model", "8", "--backbone.n-layers", "1", "--backbone.dropout", "0.1"],
    "agent": ["train_agent.py", "--context-len", "4", "--batch-size", "8", "--eval-episodes", "1", "--eval-max-steps", "5",
              "--eval-targets", "9000", "--log-every", "1", "--checkpoint-every", "1", "--warmup-steps", "1",
              "--schedule", "constant", "--device", "cpu", "--no-progress",
              "backbone:mingru", "--backbone.d-model", "8", "--backbone.n-layers", "1", "--backbone.dropout", "0.1"],
}


def command(kind: str, runs: Path, name: str, steps: int, corpus: Path, *extra: str) -> list[str]:
    script, *flags = COMMANDS[kind]
    split = flags.index(next(f for f in flags if f.startswith("backbone:")))
    data = ["--data-dir", str(corpus)] if kind.startswith("lm") else []
    return [sys.executable, str(REPO / "scripts" / script), *flags[:split], *data, "--runs-dir", str(runs),
            "--run-name", name, "--steps", str(steps), *extra, *flags[split:]]


def start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_step(path: Path, step: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file():
            try:
                if load_checkpoint(path)["step"] >= step:
                    return
            except CheckpointError:  # being replaced right now: look again
                pass
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before step {step}: {proc.communicate()[0][-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {step} after {timeout} s")


@pytest.mark.parametrize("kind", ["copy", pytest.param("lm-stream", marks=pytest.mark.slow),
                                  pytest.param("agent", marks=pytest.mark.slow)])
def test_kill_9_then_resume_gives_the_uninterrupted_run(tmp_path, corpus_dir, kind):  # noqa: F811
    steps, runs = 60, tmp_path / "runs"
    straight = subprocess.run(command(kind, runs, "straight", steps, corpus_dir), cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert straight.returncode == 0, straight.stdout + straight.stderr
    proc = start(command(kind, runs, "split", steps, corpus_dir))
    wait_for_step(runs / "split" / "checkpoints" / "last.pt", 3, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if (runs / "split" / "results.json").exists():
        pytest.skip("the run finished before the kill arrived (a very fast machine)")
    resumed = subprocess.run(command(kind, runs, "split", steps, corpus_dir, "--resume"), cwd=REPO, capture_output=True,
                             text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    a, b = load_checkpoint(runs / "straight" / "checkpoints" / "last.pt"), load_checkpoint(runs / "split" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == steps
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key  # bit-identical
    logged = [json.loads(line)["step"] for line in (runs / "split" / "metrics.jsonl").read_text().splitlines()
              if "train/loss" in json.loads(line)]
    assert logged == list(range(1, steps + 1))


def test_a_second_writer_of_a_running_run_is_refused(tmp_path, corpus_dir):  # noqa: F811
    runs = tmp_path / "runs"
    proc = start(command("copy", runs, "busy", 100_000, corpus_dir))
    try:
        wait_for_step(runs / "busy" / "checkpoints" / "last.pt", 1, proc)
        second = subprocess.run(command("copy", runs, "busy", 100_000, corpus_dir, "--resume"), cwd=REPO,
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert second.returncode == 1 and "being written by process" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("kind", ["agent", "lm-window", "copy"])
def test_a_failing_checkpoint_write_stops_the_run_and_keeps_the_last_good_one(tmp_path, corpus_dir, kind,  # noqa: F811
                                                                              monkeypatch):
    import errno

    real_save = torch.save
    calls = {"n": 0}

    def second_save_fails(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", second_save_fails)
    config = config_for(kind, tmp_path, corpus_dir, run_name="r", steps=6, checkpoint_every=2, eval_every=0)
    with pytest.raises(CheckpointError, match="No space left on device"):
        run_task(kind.split("-")[0], config)
    monkeypatch.undo()
    assert last(tmp_path, "r")["step"] == 2
    assert not list((tmp_path / "runs" / "r" / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("kind", ["lm-window", "copy"])
@pytest.mark.parametrize("damage", ["truncated", "pickle"])
def test_damaged_or_malicious_checkpoints_are_refused_on_resume(tmp_path, corpus_dir, kind, damage):  # noqa: F811
    run_task(kind.split("-")[0], config_for(kind, tmp_path, corpus_dir, run_name="r", steps=2))
    path = tmp_path / "runs" / "r" / "checkpoints" / "last.pt"
    marker = tmp_path / "pwned"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        torch.save({"format_version": 2, "model": Payload()}, path)
    with pytest.raises(CheckpointError, match=str(path).replace(".", r"\.") + ".*cannot be read safely"):
        run_task(kind.split("-")[0], config_for(kind, tmp_path, corpus_dir, run_name="r", steps=4, resume=True))
    assert not marker.exists()
