"""Trainer: AdamW with the DT/LRU decay groups, warm-up (+ optional cosine), clip, AMP, exact resume.

One `train_step` is: sample a batch on the device, predict actions, masked MSE, backward, clip,
step. Nothing in it waits for the device: the loss and grad norm are summed on the device and read
(`.item()`) only by `read_metrics`, at log intervals.

Weight decay applies to weight matrices only: not to norms, embeddings (the timestep table and the
per-modality embed_* layers), biases, or
recurrent parameters (LRU's nu/theta/gamma, learned initial states), following the LRU paper's
practice; DSF's feedback is a buffer and is never optimised.

Data parallel (torchrun): pass a distributed Context. The model is wrapped in DDP for the forward
and backward; the sampler gives each rank its slice of the global batch and `global_valid`, the
valid steps of the whole global batch, normalises the loss, so DDP's average of the ranks' gradients
is exactly the gradient of the global batch's mean loss (clipping then sees the same all-reduced
gradients on every rank). `read_metrics` averages the loss over ranks.

Exact resume: `state_dict` holds the model, optimizer, scheduler, the sampler's generator, the
torch/CUDA/numpy/python RNGs (every rank's, when distributed) and the step, as tensors and plain
data only (weights_only loading).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from agents.config import AgentConfig
from agents.model import DecisionModel
from envs.segment_sampler import SegmentBatch, SegmentSampler
from sequence_models.training.distributed import Context, all_gather_object, all_reduce_mean, wrap_ddp
from sequence_models.training.rng import rng_state, seed_everything, set_rng_state
from sequence_models.training_run import warmup_cosine

NO_DECAY_NAMES = ("nu_log", "theta_log", "gamma_log", "initial_state", "feedback")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decayed weight matrices, and everything DT/LRU leave undecayed."""
    no_decay_modules = (nn.LayerNorm, nn.Embedding)
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            undecayed = (
                isinstance(module, no_decay_modules)
                or module_name.rsplit(".", 1)[-1].startswith("embed_")  # DT's per-modality embeddings
                or name.startswith("bias")
                or name in NO_DECAY_NAMES
                or param.ndim < 2
            )
            (no_decay if undecayed else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_factor(step: int, config: AgentConfig) -> float:
    """Linear warm-up over warmup_steps, then constant or cosine down to min_lr_ratio."""
    return warmup_cosine(step, config.warmup_steps, config.steps, config.min_lr_ratio, config.cosine)


def masked_action_loss(predicted: torch.Tensor, batch: SegmentBatch) -> torch.Tensor:
    """Mean squared error over valid steps only (padding sits on the right; the backbone is causal).

    Normalised by the valid steps of the GLOBAL batch (batch.global_valid): under DDP the ranks'
    losses times world_size then average (as DDP averages gradients) to the global batch's mean."""
    mask = batch.mask.unsqueeze(-1)
    squared = (predicted.float() - batch.actions) ** 2 * mask
    valid = mask.sum() if batch.global_valid is None else batch.global_valid
    return squared.sum() / (valid * predicted.shape[-1]).clamp_min(1)


class Trainer:
    def __init__(self, model: DecisionModel, sampler: SegmentSampler, config: AgentConfig, device: torch.device,
                 ctx: Context | None = None):
        self.model, self.sampler, self.config, self.device = model, sampler, config, device
        self.ctx = ctx or Context(device=device)
        fused = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            parameter_groups(model, config.weight_decay), lr=config.lr, betas=(config.beta1, config.beta2),
            **({"fused": True} if fused else {}),
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, config))
        self.use_amp = config.amp and device.type == "cuda"
        net = wrap_ddp(model, self.ctx)  # DDP all-reduces the gradients in backward
        self.forward = torch.compile(net) if config.compile else net
        self.step = 0
        self._loss_sum = torch.zeros((), device=device)
        self._grad_norm_sum = torch.zeros((), device=device)
        self._count = 0
        self._clock = (time.perf_counter(), 0)

    def train_step(self) -> torch.Tensor:
        """One optimizer step; returns the loss as a device tensor (no host sync)."""
        self.model.train()
        batch = self.sampler.sample()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            predicted = self.forward(batch.returns_to_go, batch.states, batch.actions, batch.timesteps)
        loss = masked_action_loss(predicted, batch)
        if self.ctx.enabled:
            loss = loss * self.ctx.world_size  # DDP averages the ranks' gradients: their sum is the global batch's
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        else:
            grad_norm = torch.linalg.vector_norm(
                torch.stack([p.grad.detach().norm() for p in self.model.parameters() if p.grad is not None])
            )
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self._loss_sum += loss.detach()
        self._grad_norm_sum += grad_norm.detach()
        self._count += 1
        return loss.detach()

    def read_metrics(self) -> dict[str, float]:
        """Means since the last read (one host sync; the loss averaged over ranks, so the same on every
        rank); loss may be nan/inf, the caller decides. samples/s counts the global batch."""
        now = time.perf_counter()
        n = max(1, self._count)
        values = {
            "train/loss": all_reduce_mean(self.ctx, self._loss_sum).item() / n,
            "train/grad_norm": self._grad_norm_sum.item() / n,
            "train/lr": self.scheduler.get_last_lr()[0],
            "train/samples_per_s": self._count * self.config.batch_size * self.ctx.world_size
            / max(1e-9, now - self._clock[0]),
        }
        self._loss_sum.zero_()
        self._grad_norm_sum.zero_()
        self._count = 0
        self._clock = (now, self.step)
        return values

    def restart_clock(self) -> None:
        """Exclude time spent elsewhere (evaluation) from the next samples/s."""
        self._clock = (time.perf_counter(), self.step)

    def state_dict(self) -> dict[str, Any]:
        """The state to resume from (a collective when distributed: call it on every rank)."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng_state(),
            "step": self.step,
        }
        if self.ctx.enabled:
            state["rng_per_rank"] = all_gather_object(self.ctx, state["rng"])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        sampler_state = dict(state["sampler"])
        sampler_state["generator"] = sampler_state["generator"].cpu()
        self.sampler.load_state_dict(sampler_state)
        per_rank = state.get("rng_per_rank")
        if self.ctx.enabled and per_rank is not None and len(per_rank) == self.ctx.world_size:
            set_rng_state(per_rank[self.ctx.rank])
        else:  # same process count as the run that wrote it, or one process
            set_rng_state(state["rng"])
            if self.ctx.rank > 0:
                seed_everything(self.sampler.seed + self.ctx.rank + int(state["step"]))
        self.step = int(state["step"])
        self._clock = (time.perf_counter(), self.step)
