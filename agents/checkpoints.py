"""Agent checkpoints: what they hold, and loading one back into a DecisionModel safely.

A checkpoint is the training core's (sequence_models/training/loop.py: step, model, trainer, task,
config, best), a dict of tensors and plain data that torch.load(weights_only=True) reads, so it
never runs code, plus `dataset_info`: the observation/action sizes, the env to evaluate in and the
reference that normalizes returns. Evaluating a checkpoint needs no dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agents.config import AgentConfig
from agents.model import DecisionModel
from envs.dataset_info import DatasetInfo
from envs.trajectory_store import TrajectoryStore
from sequence_models.training.checkpoint import CheckpointError, load_checkpoint
from sequence_models.training.config import from_plain


def build_model(config: AgentConfig, info: DatasetInfo, store: TrajectoryStore | None = None) -> DecisionModel:
    """A fresh model for a dataset (statistics from `store` when given; a checkpoint overwrites them)."""
    max_ep_len = config.max_ep_len or info.max_episode_steps
    kwargs: dict[str, Any] = {}
    if store is not None:
        kwargs = dict(action_low=store.action_low, action_high=store.action_high,
                      state_mean=store.state_mean, state_std=store.state_std)
    return DecisionModel(info.obs_dim, info.act_dim, config.backbone, max_ep_len=max_ep_len,
                         state_clip=config.state_clip, token_layout=config.token_layout, **kwargs)


def check_shapes(info: dict[str, Any], obs_dim: int, act_dim: int, path: str | Path) -> None:
    """A checkpoint's plain dataset_info must describe observations and actions of these sizes."""
    got = (info.get("obs_dim"), info.get("act_dim"))
    if got != (obs_dim, act_dim):
        raise CheckpointError(
            f"checkpoint {path} is for observations of size {got[0]} and actions of size {got[1]}, but this "
            f"dataset/env has observations of size {obs_dim} and actions of size {act_dim}: it belongs to "
            f"another task ({info.get('dataset')}); start a new run (another --run-name) or pick the matching dataset"
        )


def read_agent_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict, after checking it is one of ours (CheckpointError naming the file if not)."""
    payload = load_checkpoint(path, map_location=device)
    missing = {"model", "config", "dataset_info"} - set(payload)
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a decision-agent checkpoint (missing {sorted(missing)})")
    return payload


def load_agent(path: str | Path, device: str | torch.device = "cpu", allow_foreign_env: bool = False
               ) -> tuple[DecisionModel, AgentConfig, DatasetInfo]:
    """(model in eval mode on device, its config, its DatasetInfo) from a checkpoint. The env spec it
    carries is rebuilt as data: a foreign entry point or wrapper is refused unless allow_foreign_env."""
    payload = read_agent_checkpoint(path, device)
    try:
        config = from_plain(AgentConfig, payload["config"], where=f"checkpoint {path}: config")
        info = DatasetInfo.from_plain(payload["dataset_info"], allow_foreign_code=allow_foreign_env,
                                      where=f"checkpoint {path}: dataset_info")
    except ValueError as e:  # ConfigError, DatasetInfoError, UnsafeEnvSpec
        raise CheckpointError(str(e)) from None
    model = build_model(config, info)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit the model its config describes: {e}") from e
    return model.to(device).eval(), config, info
