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
from envs.reference_scores import ReferenceScore
from envs.trajectory_store import TrajectoryStore
from sequence_models.training.checkpoint import CheckpointError, load_checkpoint
from sequence_models.training.config import ConfigError, from_plain

def dataset_info(store: TrajectoryStore) -> dict[str, Any]:
    """Everything evaluation needs to know about the training dataset, as plain data."""
    info: dict[str, Any] = {
        "dataset": store.dataset_id,
        "env_id": store.env_id,
        "env_spec": store.env_spec.to_json() if store.env_spec is not None else None,
        "obs_dim": store.obs_dim,
        "act_dim": store.act_dim,
        "max_episode_steps": int(store.max_episode_steps),
        "return_mean": float(store.episode_returns.mean()),
        "return_max": float(store.episode_returns.max()),
        "reference": None,
        "reference_missing_reason": store.reference_missing_reason,
    }
    if store.reference is not None:
        ref = store.reference
        info["reference"] = {"min": float(ref.min_score), "max": float(ref.max_score), "name": ref.name}
        info["normalized_mean"] = float(ref.normalize(store.episode_returns).mean())
    return info


def reference_of(info: dict[str, Any]) -> tuple[ReferenceScore | None, str]:
    """(the stored reference, "") or (None, the reason recorded when the dataset was loaded)."""
    ref = info.get("reference")
    if ref is None:
        return None, info.get("reference_missing_reason") or "no reference score recorded for this dataset"
    return ReferenceScore(ref["min"], ref["max"], ref["name"]), ""


def build_model(config: AgentConfig, info: dict[str, Any], store: TrajectoryStore | None = None) -> DecisionModel:
    """A fresh model for a dataset (statistics from `store` when given; a checkpoint overwrites them)."""
    max_ep_len = config.max_ep_len or info["max_episode_steps"]
    kwargs: dict[str, Any] = {}
    if store is not None:
        kwargs = dict(action_low=store.action_low, action_high=store.action_high,
                      state_mean=store.state_mean, state_std=store.state_std)
    return DecisionModel(info["obs_dim"], info["act_dim"], config.backbone, max_ep_len=max_ep_len,
                         state_clip=config.state_clip, **kwargs)


def check_shapes(info: dict[str, Any], obs_dim: int, act_dim: int, path: str | Path) -> None:
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


def load_agent(path: str | Path, device: str | torch.device = "cpu") -> tuple[DecisionModel, AgentConfig, dict[str, Any]]:
    """(model in eval mode on device, its config, dataset_info) from a checkpoint."""
    payload = read_agent_checkpoint(path, device)
    try:
        config = from_plain(AgentConfig, payload["config"], where=f"checkpoint {path}: config")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    info = payload["dataset_info"]
    model = build_model(config, info)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit the model its config describes: {e}") from e
    return model.to(device).eval(), config, info
