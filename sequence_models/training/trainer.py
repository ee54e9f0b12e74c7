"""The optimizer step every task shares: AdamW (optim.py's decay rule), the schedule, AMP, clip,
DDP, and the state an exact resume needs.

One `train_step` is: the task's loss on its next batch (under bf16 autocast when amp is on and the
device does bf16 natively: device.amp_enabled),
backward, clip, step. Nothing in it waits for the device: loss, grad norm and the task's extra
scalars are summed on the device and read (`.item()`) only by `read_metrics`, at log intervals.

The task's `loss(net)` draws its own batch and returns (loss, {name: scalar tensor}). Under DDP,
`net` is the DDP-wrapped model; DDP averages the ranks' gradients, so a task whose ranks hold equal
shares returns its rank's mean loss, and one whose ranks' shares differ in weight (the agent's
masked steps) scales its loss so that the average is the global batch's mean.

`state_dict` holds the optimizer, scheduler, step and every RNG (every rank's, when distributed),
as tensors and plain data only (weights_only loading); the model is stored beside it, once.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from .config import OptimConfig
from .device import amp_enabled, autocast
from .distributed import Context, all_gather_object, all_reduce_mean, wrap_ddp
from .optim import build_optimizer
from .rng import rng_state, seed_everything, set_rng_state

LossFunction = Callable[[nn.Module], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class Trainer:
    def __init__(self, model: nn.Module, loss: LossFunction, optim: OptimConfig, total_steps: int,
                 device: torch.device, ctx: Context | None = None, amp: bool = False, compile: bool = False,
                 samples_per_step: int = 1, steps_per_epoch: int | None = None, seed: int = 0):
        self.model, self.loss, self.optim, self.device = model, loss, optim, device
        self.ctx = ctx or Context(device=device)
        self.samples_per_step, self.seed = samples_per_step, seed
        self.optimizer, self.scheduler = build_optimizer(model, optim, total_steps, device, steps_per_epoch)
        self.use_amp = amp_enabled(amp, device)
        net = wrap_ddp(model, self.ctx)  # DDP all-reduces the gradients in backward
        self.net = torch.compile(net) if compile else net
        self.step = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._clock = time.perf_counter()

    def _add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        if name in self._sums:
            self._sums[name] += value
        else:
            self._sums[name] = value.clone()

    def train_step(self) -> torch.Tensor:
        """One optimizer step; returns the loss as a device tensor (no host sync)."""
        self.model.train()
        with autocast(self.device, self.use_amp):
            loss, extras = self.loss(self.net)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parameters = [p for p in self.model.parameters() if p.grad is not None]
        if self.optim.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, self.optim.grad_clip, foreach=True)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in parameters], foreach=True)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self._add("train/loss", loss)
        self._add("train/grad_norm", grad_norm)
        for name, value in extras.items():
            self._add(f"train/{name}", value)
        self._count += 1
        return loss.detach()

    def read_metrics(self) -> dict[str, float]:
        """Means since the last read (one host sync; averaged over ranks, so the same on every rank);
        the loss may be nan/inf, the caller decides. samples/s counts the global batch."""
        now = time.perf_counter()
        n = max(1, self._count)
        values = {name: all_reduce_mean(self.ctx, total).item() / n for name, total in self._sums.items()}
        values["train/lr"] = self.scheduler.get_last_lr()[0]
        values["train/samples_per_s"] = (self._count * self.samples_per_step * self.ctx.world_size
                                         / max(1e-9, now - self._clock))
        self._sums.clear()
        self._count = 0
        self._clock = now
        return values

    def restart_clock(self) -> None:
        """Exclude time spent elsewhere (evaluation) from the next samples/s."""
        self._clock = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, schedule, step and RNGs (a collective when distributed: call it on every rank)."""
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "rng": rng_state(), "step": self.step}
        if self.ctx.enabled:
            state["rng_per_rank"] = all_gather_object(self.ctx, state["rng"])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        per_rank = state.get("rng_per_rank")
        if self.ctx.enabled and per_rank is not None and len(per_rank) == self.ctx.world_size:
            set_rng_state(per_rank[self.ctx.rank])
        else:  # the same process count as the run that wrote it, or one process
            set_rng_state(state["rng"])
            if self.ctx.rank > 0:
                seed_everything(self.seed + self.ctx.rank + int(state["step"]))
        self.step = int(state["step"])
        self._clock = time.perf_counter()


def finite_parameters(model: nn.Module) -> bool:
    """True when every parameter is finite (one host sync)."""
    return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())
