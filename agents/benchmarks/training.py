"""Training speed: samples/s (segments of K steps per second) of the trainer's step, per backbone.

Every backbone's Trainer runs `steps // repeats` steps per round, all backbones in turns within a
round (so a load that comes and goes on a shared machine slows them alike), after a warm-up step;
the median round is reported, and vs_transformer is the transformer's time over each backbone's.
"""

from __future__ import annotations

import statistics
import time

import torch
from tqdm import tqdm

from agents.benchmarks.options import ALL_BACKBONES
from agents.benchmarks.untrained import untrained_trainer
from envs.trajectory_store import TrajectoryStore


def time_in_turns(trainers: dict, steps: int, repeats: int, warmup: int = 1, desc: str = "") -> dict:
    """Median seconds per train_step of each trainer; rounds of `steps` steps, every trainer once per round."""
    for trainer in trainers.values():
        for _ in range(warmup):
            trainer.train_step()
        trainer.read_metrics()
    times: dict = {key: [] for key in trainers}
    for _ in tqdm(range(repeats), desc=desc, disable=not desc):
        for key, trainer in trainers.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            trainer.read_metrics()  # one host sync: the device has finished
            times[key].append((time.perf_counter() - t0) / steps)
    return {key: statistics.median(t) for key, t in times.items()}


def benchmark_training(store: TrajectoryStore, backbones=ALL_BACKBONES, steps: int = 20, batch_size: int = 64,
                       context_len: int = 20, device: str | torch.device = "cpu", repeats: int = 3,
                       size: dict | None = None) -> list[dict]:
    """Training samples/s per backbone (each round runs `steps` steps of every backbone in turn)."""
    device = torch.device(device)
    trainers = {name: untrained_trainer(name, store, context_len, batch_size, size, device) for name in backbones}
    seconds = time_in_turns(trainers, max(1, steps // repeats), repeats, desc="agent training")
    reference = seconds.get("transformer")
    return [{"backbone": name, "batch_size": batch_size, "context_len": context_len,
             "ms_per_step": 1e3 * s, "samples_per_s": batch_size / s,
             "vs_transformer": reference / s if reference else ""} for name, s in seconds.items()]
