"""Language modelling with any backbone on the training core: config, presets, the task, `run`.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn.functional as F

from ..backbone import BackboneChoice, MinGRUConfig, TransformerConfig, backbone_config
from ..training import distributed
from ..training.checkpoint import CheckpointError
from ..training.config import Optim, OptimConfig, Run, RunConfig, check, parse_config
from ..training.device import amp_enabled, autocast
from ..training.distributed import Context
from ..training.loop import Evaluation, Setup, run_training
from .language_model import POSITIONAL_EMBEDDING, LanguageModel, detach_state
from .text import Corpus, StreamBatches, WindowSampler, load_corpus, windows

Preset = Literal["cpu-small", "shakespeare-char", "ptb-small", "dsf-ptb", "dsf-wikitext103", "claims-dsf",
                 "claims-shakespeare"]
SCRIPT = "scripts/train_lm.py"


@dataclass(frozen=True)
class LMConfig:
    preset: Preset = "cpu-small"
    """named set of defaults (see PRESETS); the other flags override it"""

    # data
    corpus: Literal["tinyshakespeare", "ptb", "wikitext2", "wikitext103"] = "tinyshakespeare"
    data_dir: str | None = None
    """folder holding the corpus files (e.g. ../shared/data/ptb); default: download into the cache"""
    cache_dir: str | None = None
    """download cache (default ~/.cache/decision-backbones/data or $DECISION_BACKBONES_DATA)"""
    verify_data: bool = True
    """check the files' sha256 where it is known"""
    batching: Literal["window", "stream"] = "window"
    carry_state: bool = True
    """stream batching: carry the recurrent state across consecutive batches"""
    seq_len: int = 64
    batch_size: int = 32
    """sequences per step, PER RANK under torchrun (global batch: batch_size x ranks)"""
    eval_batch_size: int = 32
    """sequences per evaluation batch in all (split across ranks under torchrun)"""

    # model
    backbone: BackboneChoice = MinGRUConfig(d_model=128, n_layers=2, dropout=0.1)
    tie_weights: bool = True
    positional_embedding: Literal["auto", "on", "off"] = "auto"
    """auto: learned positions for the transformer only"""

    # training
    epochs: float = 1.0
    """training length in passes over the training split (used when steps = 0)"""
    steps: int = 300
    """optimizer steps; 0 means epochs x batches per epoch"""
    run: Run = RunConfig(log_every=25, eval_every=100, checkpoint_every=100, amp=False, cpu_threads=0)
    optim: Optim = OptimConfig(lr=3e-3, beta2=0.99, weight_decay=0.01, warmup_steps=30, grad_clip=1.0)

    # evaluation
    eval_batches: int = 40
    """window batching: validation batches per evaluation (0: the whole split); the final evaluation always uses the whole split"""
    sample_tokens: int = 0
    """print a sample of this many tokens at the end"""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("steps", "epochs", "data_dir", "cache_dir", "verify_data", "eval_batch_size",
                                            "eval_batches", "sample_tokens")

    def __post_init__(self) -> None:
        problems = []
        if self.seq_len < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            problems.append(f"seq_len, batch_size and eval_batch_size must be >= 1, got {self.seq_len}, "
                            f"{self.batch_size} and {self.eval_batch_size}")
        if self.steps < 0 or not self.epochs > 0:
            problems.append(f"steps must be >= 0 (0: use epochs) and epochs > 0, got {self.steps} and {self.epochs}")
        if self.eval_batches < 0 or self.sample_tokens < 0:
            problems.append("eval_batches and sample_tokens must be >= 0")
        check(problems)

    def default_run_name(self) -> str:
        return f"lm-{self.corpus}-{self.backbone.name}-{self.backbone.gradient}-s{self.run.seed}"


def _gru(**fields) -> Any:
    return backbone_config("gru", **fields)


PRESETS: dict[str, Callable[[], LMConfig]] = {
    # Minutes on a 2-core CPU.
    "cpu-small": lambda: LMConfig(),
    # nanoGPT's config/train_shakespeare_char.py: 6 x 384, 6 heads, context 256, batch 64, dropout 0.2,
    # lr 1e-3 cosine to 1e-4 over 5000 steps, warm-up 100, weight decay 0.1, beta2 0.99. The minGRU paper
    # trains its Shakespeare models in this setting (test loss: minGRU 1.548, transformer 1.547).
    "shakespeare-char": lambda: LMConfig(
        preset="shakespeare-char", backbone=TransformerConfig(d_model=384, n_layers=6, n_heads=6, dropout=0.2),
        seq_len=256, batch_size=64, eval_batch_size=64, steps=5000, eval_batches=0, sample_tokens=250,
        run=RunConfig(log_every=25, eval_every=250, checkpoint_every=250, amp=False, cpu_threads=0),
        optim=OptimConfig(lr=1e-3, beta2=0.99, weight_decay=0.1, warmup_steps=100, grad_clip=1.0),
    ),
    # The DSF paper's PTB setting (1-layer GRU-256, context 64, batch 128, AdamW lr 1e-3, weight decay 1e-4,
    # StepLR x0.1 every 10 epochs, 30 epochs) in this project's residual block without MLP.
    "dsf-ptb": lambda: LMConfig(
        preset="dsf-ptb", corpus="ptb", batching="stream", backbone=_gru(d_model=256, n_layers=1, mlp_ratio=0.0),
        seq_len=64, batch_size=128, eval_batch_size=128, steps=0, epochs=30, eval_batches=0,
        run=RunConfig(log_every=50, eval_every=0, checkpoint_every=500, amp=False, cpu_threads=0),
        optim=OptimConfig(lr=1e-3, weight_decay=1e-4, schedule="step", warmup_steps=0, lr_step_epochs=10,
                          lr_gamma=0.1, grad_clip=1.0),
    ),
    # dsf-ptb's model on a CPU budget: 300 steps of the first epoch, cosine decay.
    "ptb-small": lambda: LMConfig(
        preset="ptb-small", corpus="ptb", batching="stream", backbone=_gru(d_model=256, n_layers=1, mlp_ratio=0.0),
        seq_len=64, batch_size=128, eval_batch_size=128, steps=300, eval_batches=0,
        run=RunConfig(log_every=25, eval_every=100, checkpoint_every=100, amp=False, cpu_threads=0),
        optim=OptimConfig(lr=3e-3, weight_decay=1e-4, warmup_steps=0, grad_clip=1.0),
    ),
    # The DSF paper's WikiText-103 model: 3 x GRU-512 in transformer-like blocks (norm, mixer, residual, MLP);
    # the optimiser follows dsf-ptb, the number of epochs is this project's choice.
    "dsf-wikitext103": lambda: LMConfig(
        preset="dsf-wikitext103", corpus="wikitext103", batching="stream",
        backbone=_gru(d_model=512, n_layers=3, mlp_ratio=4.0), seq_len=64, batch_size=128, eval_batch_size=128,
        steps=0, epochs=3, eval_batches=0,
        run=RunConfig(log_every=100, eval_every=2000, checkpoint_every=2000, amp=True, cpu_threads=0),
        optim=OptimConfig(lr=1e-3, weight_decay=1e-4, schedule="step", warmup_steps=0, lr_step_epochs=1,
                          lr_gamma=0.1, grad_clip=1.0),
    ),
    # The DSF claim (BPTT < DSF < truncated) at CPU scale (scripts/claims.py --claim dsf): Tiny Shakespeare
    # characters, 1-layer GRU-128, stream batching with the state carried, context 64, batch 32, lr 3e-3,
    # 1000 steps (measured: valid loss 1.635 / 1.679 / 1.718), evaluated on the whole split every 100.
    "claims-dsf": lambda: LMConfig(
        preset="claims-dsf", batching="stream", backbone=_gru(d_model=128, n_layers=1), seq_len=64, batch_size=32,
        eval_batch_size=32, steps=1000, eval_batches=0,
        run=RunConfig(log_every=25, eval_every=100, checkpoint_every=500, amp=False, cpu_threads=1),
        optim=OptimConfig(lr=3e-3, beta2=0.99, weight_decay=0.01, warmup_steps=30, grad_clip=1.0),
    ),
    # The minGRU paper's Shakespeare comparison (minGRU 1.548 vs transformer 1.547) at CPU scale
    # (scripts/claims.py --claim shakespeare): 2 x 128 for every backbone (transformer: 4 heads), random
    # windows of 64, batch 32, 1500 steps, cosine to 0.1 x lr, the whole validation split at the end.
    "claims-shakespeare": lambda: LMConfig(
        preset="claims-shakespeare", backbone=MinGRUConfig(d_model=128, n_layers=2, dropout=0.1), seq_len=64,
        batch_size=32, steps=1500, eval_batches=40,
        run=RunConfig(log_every=25, eval_every=150, checkpoint_every=500, amp=False, cpu_threads=1),
        optim=OptimConfig(lr=3e-3, beta2=0.99, weight_decay=0.01, warmup_steps=30, grad_clip=1.0),
    ),
}


def parse_args(argv: list[str] | None = None, description: str | None = None) -> LMConfig:
    return parse_config(LMConfig, PRESETS, "cpu-small", "lm", argv, description)


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
