"""Data-parallel training under torchrun (2 CPU processes, gloo): ranks stay in sync, 2 ranks at batch
B equal one process at batch 2B, evaluation is split and gathered, and a rank that dies stops the run
with a clear message while the last checkpoint stays valid."""

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

from agents.checkpoints import load_agent
from agents.run import train_agent
from envs.builtin_datasets import ensure_builtin_dataset
from envs.minari_ids import DEFAULT_DATASET_ID
from envs.segment_sampler import SegmentSampler
from envs.trajectory_store import TrajectoryStore
from sequence_models.training.distributed import Context, shard
from sequence_models.training.checkpoint import load_checkpoint
from tests.agent_helpers import TINY, tiny_config

REPO = Path(__file__).resolve().parents[1]
TINY_FLAGS = ["--context-len", "4", "--warmup-steps", "2", "--log-every", "2", "--eval-episodes", "3",
              "--eval-max-steps", "12", "--eval-targets", "9000", "3000", "--no-progress", "--device", "cpu",
              "backbone:mingru", "--backbone.d-model", "16", "--backbone.n-layers", "1", "--backbone.dropout", "0"]


def torchrun(args: list[str], **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
               "--monitor-interval", "0.2", str(REPO / "scripts" / "train_agent.py"), *args]
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def test_sampler_ranks_draw_the_halves_of_the_doubled_batch():
    ensure_builtin_dataset(DEFAULT_DATASET_ID)
    store = TrajectoryStore.from_dataset_id(DEFAULT_DATASET_ID)
    whole = SegmentSampler(store, 6, 10, seed=3).sample()
    halves = [SegmentSampler(store, 6, 5, seed=3, rank=r, world_size=2).sample() for r in range(2)]
    for key in ("states", "actions", "returns_to_go", "timesteps", "mask", "starts"):
        torch.testing.assert_close(torch.cat([getattr(h, key) for h in halves]), getattr(whole, key), rtol=0, atol=0)
    assert int(whole.global_valid) == int(whole.mask.sum()) == int(halves[0].global_valid) == int(halves[1].global_valid)
    assert [list(shard(7, Context(rank=r, world_size=3))) for r in range(3)] == [[0, 1, 2], [3, 4], [5, 6]]


def test_two_ranks_match_one_process_with_the_doubled_batch(tmp_path):
    steps = 4
    proc = torchrun(["--runs-dir", str(tmp_path / "runs"), "--run-name", "ddp", "--steps", str(steps),
                     "--batch-size", "4", "--checkpoint-every", "2", *TINY_FLAGS])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "batch 4 per rank x 2 ranks = 8" in out

    single = tiny_config(tmp_path, run_name="single", steps=steps, batch_size=8, eval_episodes=3)
    assert (single.context_len, single.optim.warmup_steps, single.eval_max_steps) == (4, 2, TINY["eval_max_steps"])
    single_results = train_agent(single, quiet=True)

    ddp_results = json.loads((tmp_path / "runs" / "ddp" / "results.json").read_text())
    assert ddp_results["distributed"]["world_size"] == 2
    assert ddp_results["distributed"]["global_batch_size"] == 8
    assert ddp_results["distributed"]["max_parameter_divergence"] == 0.0  # the two ranks hold identical parameters
    a = load_checkpoint(tmp_path / "runs" / "ddp" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "runs" / "single" / "checkpoints" / "last.pt")
    assert a["trainer"]["step"] == b["trainer"]["step"] == steps
    worst = max((a["model"][k].float() - b["model"][k].float()).abs().max().item() for k in b["model"])
    assert worst < 1e-5, f"2 ranks x 4 vs 1 process x 8: parameters differ by {worst}"
    assert torch.equal(a["task"]["sampler"]["generator"], b["task"]["sampler"]["generator"])
    # evaluation split across ranks (3 episodes x 2 targets = 6 envs, 3 per rank) and gathered, seeds kept
    for t_a, t_b in zip(ddp_results["final"]["targets"], single_results["final"]["targets"]):
        assert len(t_a["returns"]) == 3 and t_a["lengths"] == t_b["lengths"]
        assert t_a["returns"] == pytest.approx(t_b["returns"], abs=1e-3)
    rows = [json.loads(x) for x in (tmp_path / "runs" / "ddp" / "metrics.jsonl").read_text().splitlines()]
    single_rows = [json.loads(x) for x in (tmp_path / "runs" / "single" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert losses == pytest.approx([r["train/loss"] for r in single_rows if "train/loss" in r], rel=1e-4)


def _worker_pids(parent: int) -> dict[int, int]:
    """{LOCAL_RANK: pid} of torchrun's worker processes (Linux /proc)."""
    workers = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            env = dict(x.split("=", 1) for x in (entry / "environ").read_text().split("\0") if "=" in x)
        except (OSError, ValueError, IndexError):
            continue
        if "LOCAL_RANK" in env:
            workers[int(env["LOCAL_RANK"])] = int(entry.name)
    return workers


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds torchrun's workers through /proc")
def test_a_rank_that_dies_stops_the_run_and_the_last_checkpoint_stays_valid(tmp_path):
    run_dir = tmp_path / "runs" / "dies"
    last = run_dir / "checkpoints" / "last.pt"
    proc = torchrun(["--runs-dir", str(tmp_path / "runs"), "--run-name", "dies", "--steps", "100000",
                     "--batch-size", "4", "--checkpoint-every", "3", *TINY_FLAGS])
    try:
        deadline = time.time() + 90
        while not last.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert last.exists(), proc.communicate(timeout=30)[0] if proc.poll() is not None else "no checkpoint in 90 s"
        time.sleep(0.3)  # a few more checkpoints: the kill may land in the middle of writing one
        workers = _worker_pids(proc.pid)
        assert set(workers) == {0, 1}, workers
        os.kill(workers[1], signal.SIGKILL)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "rank 0 of 2: distributed training stopped at step" in out or "stopped by torchrun" in out, out[-3000:]
    model, config, _ = load_agent(last)  # the last checkpoint is whole: rank 0 wrote it atomically
    assert config.run.run_name == "dies"
    step = load_checkpoint(last)["trainer"]["step"]
    assert step > 0 and step % 3 == 0
    assert not (run_dir / "results.json").exists()
