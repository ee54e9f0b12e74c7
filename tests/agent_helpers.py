"""Tiny agent configs shared by the tests/test_agent_*.py files."""

from __future__ import annotations

from agents.config import AgentConfig
from sequence_models.backbone_configs import backbone_config
from sequence_models.training.config import override

TINY = dict(
    context_len=4, steps=4, batch_size=8, warmup_steps=2, log_every=2, checkpoint_every=2, eval_episodes=2,
    eval_max_steps=12, eval_targets=(9000.0, 3000.0), progress=False, device="cpu",
)


def tiny_config(tmp_path, backbone: str = "mingru", gradient: str = "bptt", **overrides) -> AgentConfig:
    """A seconds-long agent run; overrides name any field, nested ones (seed, lr, ...) included."""
    fields = {"d_model": 16, "n_layers": 1, "dropout": 0.0, "gradient": gradient}
    if backbone == "transformer":
        fields["n_heads"] = 2
    config = AgentConfig(backbone=backbone_config(backbone, **fields))
    return override(config, runs_dir=str(tmp_path / "runs"), **{**TINY, **overrides})
