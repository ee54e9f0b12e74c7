"""The agent's training step: sample segments on the device, predict actions, masked MSE.

Everything else (AdamW and its decay rule, schedule, clip, AMP, DDP, resume state) is the training
core's (sequence_models/training/trainer.py); `Trainer` here is that trainer with the agent's loss,
which the agent run and the benchmarks both use.

Data parallel: the sampler gives each rank its slice of the global batch and `global_valid`, the
valid steps of the whole global batch, normalises the loss; times world_size, DDP's average of the
ranks' gradients is exactly the gradient of the global batch's mean loss.
"""

from __future__ import annotations

import torch
from torch import nn

from agents.config import AgentConfig
from agents.model import DecisionModel
from envs.segment_sampler import SegmentBatch, SegmentSampler
from sequence_models.training import trainer as core
from sequence_models.training.distributed import Context


def masked_action_loss(predicted: torch.Tensor, batch: SegmentBatch) -> torch.Tensor:
    """Mean squared error over valid steps only (padding sits on the right; the backbone is causal),
    normalised by the valid steps of the GLOBAL batch (batch.global_valid) when there is one."""
    mask = batch.mask.unsqueeze(-1)
    squared = (predicted.float() - batch.actions) ** 2 * mask
    valid = mask.sum() if batch.global_valid is None else batch.global_valid
    return squared.sum() / (valid * predicted.shape[-1]).clamp_min(1)


def agent_loss(sampler: SegmentSampler, ctx: Context) -> core.LossFunction:
    """The loss of the next sampled batch, scaled for DDP's gradient average (module doc)."""
    def loss(net: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = sampler.sample()
        predicted = net(batch.returns_to_go, batch.states, batch.actions, batch.timesteps)
        value = masked_action_loss(predicted, batch)
        return (value * ctx.world_size if ctx.enabled else value), {}

    return loss


class Trainer(core.Trainer):
    """The core trainer on the agent's loss, set up from an AgentConfig."""

    def __init__(self, model: DecisionModel, sampler: SegmentSampler, config: AgentConfig, device: torch.device,
                 ctx: Context | None = None):
        ctx = ctx or Context(device=device)
        super().__init__(model, agent_loss(sampler, ctx), config.optim, config.steps, device, ctx,
                         amp=config.run.amp, compile=config.run.compile, samples_per_step=config.batch_size,
                         seed=config.run.seed)
        self.sampler = sampler
