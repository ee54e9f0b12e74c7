"""The agents under test: untrained DT-size models and their trainers, built through the training API.

This is the one module of the benchmarks that calls agents.config / agents.checkpoints / agents.run /
agents.trainer (AgentConfig, build_model, load_store, Trainer), so a change to that
API is adapted here and nowhere else.
"""

from __future__ import annotations

import torch

from agents.checkpoints import build_model
from agents.config import AgentConfig
from agents.model import DecisionModel
from agents.run import load_store
from agents.trainer import Trainer
from envs.dataset_info import DatasetInfo
from envs.segment_sampler import SegmentSampler
from envs.trajectory_store import TrajectoryStore
from sequence_models.backbone_configs import backbone_config

DT_SIZE = {"d_model": 128, "n_layers": 3}


def benchmark_store() -> TrajectoryStore:
    """The default agent dataset (the built-in one): the benchmarks need its shapes and a sampler, not a score."""
    return load_store(AgentConfig())


def untrained_model(name: str, store: TrajectoryStore, context_len: int = 20, size: dict | None = None,
                    device: str | torch.device = "cpu", token_layout: str = "dt") -> DecisionModel:
    """An untrained DecisionModel with backbone `name` (DT size unless `size` says otherwise), in eval mode."""
    fields = {**DT_SIZE, **(size or {}), "dropout": 0.1}
    if name == "transformer":
        fields["n_heads"] = 1
    config = AgentConfig(backbone=backbone_config(name, **fields), context_len=context_len, token_layout=token_layout)
    torch.manual_seed(0)
    return build_model(config, DatasetInfo.from_store(store), store).to(device).eval()


def untrained_trainer(name: str, store: TrajectoryStore, context_len: int, batch_size: int, size: dict | None,
                      device: torch.device) -> Trainer:
    """A Trainer of an untrained model on segments of K=context_len steps; call train_step() / read_metrics()."""
    model = untrained_model(name, store, context_len, size, device)
    config = AgentConfig(backbone=model.backbone_config, context_len=context_len, batch_size=batch_size, steps=10**6)
    return Trainer(model, SegmentSampler(store, context_len, batch_size, device=device, seed=0), config, device)
