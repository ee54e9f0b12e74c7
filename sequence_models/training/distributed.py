"""Data-parallel training under torchrun: one small set of helpers shared by every training script.

    torchrun --nproc-per-node 2 scripts/train_agent.py ...          # one machine, 2 processes
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29500 --rdzv-id RUN scripts/train_agent.py ...   # on every node

`setup()` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK): without it (a plain
`python scripts/...`) it is a no-op and every helper here acts as the single-process identity, so the
scripts have one code path. With it: the process group is gloo on CPU and nccl on CUDA, each rank
uses cuda:LOCAL_RANK, and collectives give up after `timeout_s` instead of hanging forever.

Batch semantics: a script's --batch-size is PER RANK; the global batch is batch_size x world_size.
Every rank draws the global batch from the same seeded stream and keeps its own slice, so N ranks at
batch B see exactly the batches one process at batch N·B sees (and DDP's gradient average equals the
gradient of the global mean loss): scaling out changes speed, not the optimisation.

A rank that dies: its peers' next collective fails (gloo and nccl notice a closed connection at
once; a rank that hangs is caught by the timeout), and torchrun stops the remaining ranks. Only rank
0 writes checkpoints, atomically, so the last one written stays valid; `stopped_message` words the
error every rank prints on the way out.
"""

from __future__ import annotations

import datetime
import inspect
import os
import signal
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False  # this setup() created the process group (and must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class RankStopped(RuntimeError):
    """A collective failed or torchrun stopped this rank: another rank died, hung, or was killed."""


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """cuda (no index, e.g. from --device auto) becomes cuda:LOCAL_RANK; anything else is kept."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def setup(device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> Context:
    """Join torchrun's process group (gloo on CPU, nccl on CUDA); a no-op without torchrun."""
    if not launched_by_torchrun():
        return Context(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = rank_device(device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
        initialized_here = True
    _stop_on_sigterm(rank)
    return Context(rank, world, local_rank, device, initialized_here)


def _stop_on_sigterm(rank: int) -> None:
    """torchrun stops the surviving ranks with SIGTERM when one fails: say so instead of dying silently."""
    def handler(signum, frame):
        raise RankStopped(f"rank {rank}: stopped by torchrun (signal {signal.Signals(signum).name}), "
                          "most likely because another rank failed; see that rank's error above")

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. a test runner): keep the default
        pass


def cleanup(ctx: Context) -> None:
    """Destroy the process group if this context created it."""
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def stopped_message(ctx: Context, error: BaseException, where: str, last_checkpoint: str) -> str:
    """The error a rank reports when distributed training cannot go on."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    where = f" {where}" if where else ""
    return (f"rank {ctx.rank} of {ctx.world_size}: distributed training stopped{where} ({type(error).__name__}: {first}). "
            f"Another rank probably died or stopped responding (timeout per collective: see --dist-timeout-s); "
            f"torchrun stops the others. Last valid checkpoint: {last_checkpoint}; continue with --resume.")


# ---------------------------------------------------------------------------------------- collectives
# Each is the identity in a single process, so callers need no `if distributed` branches.


def barrier(ctx: Context) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_mean(ctx: Context, tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over ranks (a new tensor; the input is left as it was)."""
    if not ctx.enabled:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ctx.world_size


def all_gather_object(ctx: Context, obj: Any) -> list[Any]:
    """[rank 0's obj, rank 1's obj, ...] on every rank (pickled: small objects only)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(ctx: Context, obj: Any, src: int = 0) -> Any:
    """Rank src's obj, on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard(n: int, ctx: Context) -> range:
    """This rank's contiguous share of range(n) (sizes differ by at most one; may be empty)."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return range(start, start + base + (ctx.rank < extra))


def wrap_ddp(model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """DistributedDataParallel(model) when distributed (it broadcasts rank 0's parameters), else model."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # Buffers (state statistics, DSF's feedback) are equal on every rank: synced once at init, never per forward.
    newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = {"forward_sync_buffers": False} if newer else {"broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=ids, **no_sync)


@torch.no_grad()
def max_parameter_divergence(ctx: Context, model: torch.nn.Module) -> float:
    """Largest |difference| between any rank's parameters and rank 0's (0.0 when DDP kept them in sync)."""
    if not ctx.enabled:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    diff = (flat - reference).abs().max() if flat.numel() else flat.new_zeros(())
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())
