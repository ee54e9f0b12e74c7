"""Language modelling with any backbone on the training core: the task and `run` (its config and
presets: lm_config.py).

Corpora: Tiny Shakespeare (characters), Penn Treebank, WikiText-2/103 (words); see text.py.

Batching: `window` draws independent random windows (nanoGPT); `stream` reads the corpus as
batch_size contiguous streams, and recurrent backbones carry their (detached) state from one batch
to the next (--no-carry-state resets it every batch). The transformer never carries its KV cache
across batches (it would grow without bound). A resumed run continues the stream at the batch it
stopped at with the carried state it had, so resuming is exact in both batchings. Evaluation
follows the batching: whole-split streams with the state carried, or non-overlapping windows.
Reported: loss in nats per token, perplexity, and bits per character for character-level corpora.

Data parallel (torchrun): --batch-size is per rank; rank r reads rows [r·B, (r+1)·B) of the N·B
streams or windows one process at batch N·B would read. Evaluation splits the streams / windows
across ranks and sums them (the same loss as one process).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..training import distributed
from ..training.checkpoint import CheckpointError
from ..training.device import amp_enabled, autocast
from ..training.distributed import Context
from ..training.loop import Evaluation, Setup, run_training
from .language_model import POSITIONAL_EMBEDDING, LanguageModel, detach_state
from .lm_config import SCRIPT, LMConfig
from .text import Corpus, StreamBatches, WindowSampler, load_corpus, windows


@torch.inference_mode()
def evaluate_split(model: LanguageModel, ids: torch.Tensor, config: LMConfig, carry: bool, ctx: Context,
                   use_amp: bool, max_batches: int = 0) -> float:
    """Mean cross-entropy in nats per token over the split (or its first max_batches batches).

    Distributed: each rank takes its share of the streams (rows, which are independent) or of the
    window batches, and the sums are added over ranks: the same number as one process."""
    device = ctx.device
    was_training = model.training
    model.eval()
    total = torch.zeros(2, device=device, dtype=torch.float64)  # loss sum, token count
    if config.batching == "stream":
        rows = distributed.shard(config.eval_batch_size, ctx)
        batches = iter(StreamBatches(ids, config.eval_batch_size, config.seq_len, device, rows=rows) if len(rows) else ())
        mine = lambda i: True  # noqa: E731
    else:
        batches = windows(ids, config.eval_batch_size, config.seq_len, device)
        mine = lambda i: i % ctx.world_size == ctx.rank  # noqa: E731
    state = None
    for i, (x, y) in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        if not mine(i):
            continue
        with autocast(device, use_amp):
            logits, state = model(x, state if carry else None)
        total[0] += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
        total[1] += y.numel()
    model.train(was_training)
    total = distributed.all_reduce_mean(ctx, total) * ctx.world_size
    return total[0].item() / max(1.0, total[1].item())


class LMTask:
    """Language modelling as a training-core task (sequence_models.training.loop.Task)."""

    resumable_fields = LMConfig.RESUMABLE

    def __init__(self, config: LMConfig, setup: Setup):
        self.config, self.ctx, self.say = config, setup.ctx, setup.say
        ctx, device = setup.ctx, setup.device
        self.corpus: Corpus = load_corpus(config.corpus, config.data_dir, config.cache_dir, verify=config.verify_data)
        train_ids = self.corpus.splits["train"]
        backbone = config.backbone
        self.carry = config.batching == "stream" and config.carry_state and backbone.name != "transformer"
        if config.batching == "stream" and config.carry_state and backbone.name == "transformer":
            setup.say("note: the transformer does not carry its KV cache across batches; each batch starts afresh")
        mine = range(ctx.rank * config.batch_size, (ctx.rank + 1) * config.batch_size)  # this rank's rows
        if config.batching == "stream":
            self.stream = StreamBatches(train_ids, config.batch_size * ctx.world_size, config.seq_len, device, rows=mine)
            self.steps_per_epoch = len(self.stream)
        else:
            self.sampler = WindowSampler(train_ids, config.batch_size, config.seq_len, device, seed=config.run.seed,
                                         rank=ctx.rank, world_size=ctx.world_size)
            self.steps_per_epoch = max(1, train_ids.numel() // (config.batch_size * ctx.world_size * config.seq_len))
        self.total_steps = config.steps or max(1, round(config.epochs * self.steps_per_epoch))
        self.samples_per_step = config.batch_size
        self.model = LanguageModel(self.corpus.vocab_size, backbone, tie_weights=config.tie_weights,
                                   positional_embedding=POSITIONAL_EMBEDDING[config.positional_embedding],
                                   max_len=config.seq_len).to(device)
        self.use_amp = amp_enabled(config.run.amp, device)
        self.position = 0  # training batches drawn so far
        self.state = None  # the carried (detached) recurrent state, stream batching

    def loss(self, net) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.config.batching == "stream":
            k = self.position % len(self.stream)
            x, y = self.stream[k]
            state = self.state if self.carry and k > 0 else None
        else:
            (x, y), state = self.sampler.sample(), None
        logits, state = net(x, state)
        self.state = detach_state(state) if self.carry else None
        self.position += 1
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten()), {}

    def _split_loss(self, split: str, max_batches: int = 0) -> float:
        return evaluate_split(self.model, self.corpus.splits[split], self.config, self.carry, self.ctx,
                              self.use_amp, max_batches)

    def _scalars(self, prefix: str, loss: float) -> dict[str, float]:
        values = {f"{prefix}loss": loss, f"{prefix}perplexity": math.exp(min(loss, 700.0))}
        if self.corpus.level == "char":
            values[f"{prefix}bpc"] = loss / math.log(2)
        return values

    def evaluate(self, step: int, final: bool) -> Evaluation:
        window_batches = self.config.eval_batches if self.config.batching == "window" and not final else 0
        loss = self._split_loss("valid", window_batches)
        scalars = self._scalars("valid/", loss)
        return Evaluation(scalars, -loss, {"valid_loss": loss},
                          [f"valid loss {loss:.4f}, perplexity {scalars['valid/perplexity']:.2f}"])

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"position": self.position, "carried_state": self.state}
        if self.config.batching == "window":
            state["sampler"] = self.sampler.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position, self.state = int(state["position"]), state["carried_state"]
        if self.config.batching == "window":
            self.sampler.generator.set_state(state["sampler"].cpu())

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"vocab": self.corpus.vocab}

    def check_checkpoint(self, payload: dict[str, Any], path: Path) -> None:
        if payload.get("vocab") != self.corpus.vocab:
            raise CheckpointError(f"checkpoint {path} was trained on another vocabulary than {self.config.corpus}'s "
                                  "here; resume on the same corpus files, or start a new run (another --run-name)")

    def describe(self) -> str:
        config, ctx = self.config, self.ctx
        unit = "char" if self.corpus.level == "char" else "word"
        ranks = f", batch {config.batch_size} per rank x {ctx.world_size} ranks" if ctx.enabled else ""
        n_params = sum(p.numel() for p in self.model.parameters())
        return (f"{config.backbone.name} ({config.backbone.gradient}), {n_params:,} parameters; {config.corpus}: "
                f"{self.corpus.splits['train'].numel():,} training {unit}s, vocabulary {self.corpus.vocab_size}; "
                f"{self.total_steps} steps ({self.steps_per_epoch} per epoch) on {ctx.device}{ranks}")

    def results(self, final: Evaluation, best: dict[str, Any]) -> dict[str, Any]:
        config, backbone = self.config, self.config.backbone
        results: dict[str, Any] = {
            "corpus": config.corpus, "backbone": backbone.name, "gradient": backbone.gradient,
            "n_layers": backbone.n_layers, "d_model": backbone.d_model,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "epochs": self.total_steps / self.steps_per_epoch, "world_size": self.ctx.world_size,
            "global_batch_size": config.batch_size * self.ctx.world_size,
            "best_valid_loss": -best["score"] if best.get("step") is not None else None,
        }
        losses = {"valid": final.summary["valid_loss"]}
        if "test" in self.corpus.splits:
            losses["test"] = self._split_loss("test")
        for split, loss in losses.items():
            results.update({k.replace("/", "_"): v for k, v in self._scalars(f"{split}/", loss).items()})
        return results

    def final_lines(self, final: Evaluation, results: dict[str, Any]) -> list[str]:
        lines = []
        if self.config.sample_tokens:
            lines.append("\nsample:\n" + self.sample(self.config.sample_tokens))
        char = self.corpus.level == "char"

        def cell(key: str) -> str:
            return f"{results[key]:.3f}" if key in results else "-"

        backbone = self.config.backbone
        extra = " valid bpc | test bpc |" if char else ""
        lines.append(f"\n| run | corpus | backbone | gradient | layers x width | params | steps | valid loss | "
                     f"valid ppl | test ppl |{extra}")
        lines.append("|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if char else ""))
        row = (f"| {results['run']} | {self.config.corpus} | {backbone.name} | {backbone.gradient} | "
               f"{backbone.n_layers} x {backbone.d_model} | {results['parameters']:,} | {results['steps']} | "
               f"{cell('valid_loss')} | {cell('valid_perplexity')} | {cell('test_perplexity')} |")
        lines.append(row + (f" {cell('valid_bpc')} | {cell('test_bpc')} |" if char else ""))
        return lines

    def sample(self, n_tokens: int) -> str:
        device = self.ctx.device
        prompt = self.corpus.splits["valid"][:1].view(1, 1).to(device)
        self.model.eval()
        n_new = min(n_tokens, self.config.seq_len - 1) if self.model.position_embedding is not None else n_tokens
        tokens = self.model.generate(prompt, n_new, generator=torch.Generator(device=device).manual_seed(self.config.run.seed))
        return self.corpus.decode(tokens[0].tolist())


def run(config: LMConfig, quiet: bool = False) -> dict[str, Any]:
    """Train and evaluate (see the module doc); returns what results.json holds."""
    return run_training(config, "lm", lambda setup: LMTask(config, setup), SCRIPT, quiet=quiet)
