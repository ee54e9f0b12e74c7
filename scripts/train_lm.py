"""Language modelling with any backbone: Tiny Shakespeare (characters), Penn Treebank, WikiText-2/103 (words).

    python scripts/train_lm.py                                         # cpu-small: Tiny Shakespeare, minutes on a CPU
    python scripts/train_lm.py --preset cpu-small backbone:lru --backbone.d-model 64 --backbone.n-layers 2
    python scripts/train_lm.py --preset shakespeare-char               # nanoGPT's shakespeare_char model
    python scripts/train_lm.py --preset dsf-ptb --data-dir ../shared/data/ptb --backbone.gradient dsf
    python scripts/train_lm.py --preset dsf-wikitext103                # downloads WikiText-103 (~180 MB zip)

A preset is a complete set of defaults; every flag overrides it. Naming `backbone:NAME` keeps the
preset's backbone fields if NAME is the preset's backbone and starts from NAME's defaults otherwise.

Batching: `window` draws independent random windows (nanoGPT); `stream` reads the corpus as
batch_size contiguous streams, and recurrent backbones carry their (detached) state from one batch
to the next (--no-carry-state resets it every batch). The transformer never carries its KV cache
across batches (it would grow without bound). Evaluation follows the batching: whole-split streams
with the state carried, or non-overlapping windows. Reported: loss in nats per token, perplexity,
and bits per character for character-level corpora.

Writes runs/<name>/{config.yaml, metrics.jsonl, events.* (tensorboard), checkpoints/last.pt,
results.json} and prints a markdown results table.

Data parallel: `torchrun --nproc-per-node N scripts/train_lm.py ...` (DDP; --batch-size is per rank,
the global batch is N x batch_size: rank r reads rows [r·B, (r+1)·B) of the N·B streams or windows one
process at batch N·B would read). Evaluation splits the streams / windows across ranks and sums
them (the same loss as one process); rank 0 writes the run folder, logs and checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from tqdm import tqdm

from sequence_models.training import distributed
from sequence_models.backbone import BackboneChoice, MinGRUConfig, TransformerConfig, backbone_config
from sequence_models.training.distributed import Context, RankStopped
from sequence_models.kernels.backend import ScanBackend, use_scan_backend
from sequence_models.tasks.language_model import LanguageModel, detach_state
from sequence_models.tasks.text import StreamBatches, WindowSampler, load_corpus, windows
from sequence_models.training.checkpoint import load_checkpoint, save_checkpoint
from sequence_models.training.device import pick_device
from sequence_models.training_run import MetricsLog, prepare_run_dir, preset_cli, warmup_cosine

Preset = Literal["cpu-small", "shakespeare-char", "ptb-small", "dsf-ptb", "dsf-wikitext103"]


@dataclass(frozen=True)
class Args:
    preset: Preset = "cpu-small"
    """named set of defaults (see PRESETS); the other flags override it"""
    run_name: str = ""
    """folder under runs_dir (default: lm-<corpus>-<backbone>-<gradient>-s<seed>)"""
    runs_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    """auto (cuda if available), cpu, cuda, cuda:1, ..."""
    amp: bool = False
    """bfloat16 autocast (CUDA only)"""
    scan_backend: ScanBackend = "auto"
    """scan kernels: auto (fused C++ on CPU, Triton on CUDA, else PyTorch), cpu, triton or torch"""
    resume: bool = False
    """continue from runs/<name>/checkpoints/last.pt if it exists"""
    dist_timeout_s: float = 600.0
    """under torchrun: seconds a rank waits in a collective for the others before it gives up (a hung rank)"""

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

    # optimisation
    epochs: float = 1.0
    """training length in passes over the training split (used when steps = 0)"""
    steps: int = 300
    """optimizer steps; 0 means epochs x batches per epoch"""
    lr: float = 3e-3
    beta2: float = 0.99
    weight_decay: float = 0.01
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = 30
    min_lr_ratio: float = 0.1
    """cosine: final lr as a fraction of lr"""
    lr_step_epochs: float = 10.0
    """step: multiply the lr by lr_gamma every this many epochs"""
    lr_gamma: float = 0.1
    grad_clip: float = 1.0

    # logging and evaluation
    log_every: int = 25
    eval_every: int = 100
    """steps between validations (0: once per epoch)"""
    eval_batches: int = 40
    """window batching: validation batches per evaluation (0: the whole split); the final evaluation always uses the whole split"""
    sample_tokens: int = 0
    """print a sample of this many tokens at the end"""


def _gru(**fields) -> object:
    try:
        return backbone_config("gru", **fields)
    except ValueError as e:
        raise SystemExit(f"this preset needs the GRU backbone, which is not registered yet ({e})") from None


PRESETS: dict[str, Callable[[], Args]] = {
    # Minutes on a 2-core CPU.
    "cpu-small": lambda: Args(),
    # nanoGPT's config/train_shakespeare_char.py: 6 x 384, 6 heads, context 256, batch 64, dropout 0.2,
    # lr 1e-3 cosine to 1e-4 over 5000 steps, warm-up 100, weight decay 0.1, beta2 0.99. The minGRU paper
    # trains its Shakespeare models in this setting (test loss: minGRU 1.548, transformer 1.547).
    "shakespeare-char": lambda: Args(
        preset="shakespeare-char", backbone=TransformerConfig(d_model=384, n_layers=6, n_heads=6, dropout=0.2),
        seq_len=256, batch_size=64, eval_batch_size=64, steps=5000, lr=1e-3, weight_decay=0.1, warmup_steps=100,
        eval_every=250, eval_batches=0, sample_tokens=250,
    ),
    # The DSF paper's PTB setting (1-layer GRU-256, context 64, batch 128, AdamW lr 1e-3, weight decay 1e-4,
    # StepLR x0.1 every 10 epochs, 30 epochs) in this project's residual block without MLP.
    "dsf-ptb": lambda: Args(
        preset="dsf-ptb", corpus="ptb", batching="stream", backbone=_gru(d_model=256, n_layers=1, mlp_ratio=0.0),
        seq_len=64, batch_size=128, eval_batch_size=128, steps=0, epochs=30, lr=1e-3, beta2=0.999,
        weight_decay=1e-4, schedule="step", warmup_steps=0, lr_step_epochs=10, lr_gamma=0.1, eval_every=0,
        eval_batches=0, log_every=50,
    ),
    # dsf-ptb's model on a CPU budget: 300 steps of the first epoch, cosine decay.
    "ptb-small": lambda: Args(
        preset="ptb-small", corpus="ptb", batching="stream", backbone=_gru(d_model=256, n_layers=1, mlp_ratio=0.0),
        seq_len=64, batch_size=128, eval_batch_size=128, steps=300, lr=3e-3, beta2=0.999, weight_decay=1e-4,
        warmup_steps=0, eval_every=100, eval_batches=0,
    ),
    # The DSF paper's WikiText-103 model: 3 x GRU-512 in transformer-like blocks (norm, mixer, residual, MLP);
    # the optimiser follows dsf-ptb, the number of epochs is this project's choice.
    "dsf-wikitext103": lambda: Args(
        preset="dsf-wikitext103", corpus="wikitext103", batching="stream",
        backbone=_gru(d_model=512, n_layers=3, mlp_ratio=4.0), seq_len=64, batch_size=128, eval_batch_size=128,
        steps=0, epochs=3, lr=1e-3, beta2=0.999, weight_decay=1e-4, schedule="step", warmup_steps=0,
        lr_step_epochs=1, lr_gamma=0.1, eval_every=2000, eval_batches=0, log_every=100, amp=True,
    ),
}


def parse_args(argv: list[str] | None = None) -> Args:
    return preset_cli(Args, PRESETS, "cpu-small", argv, description=__doc__)


def lr_factor(step: int, args: Args, total_steps: int, steps_per_epoch: int) -> float:
    if args.schedule == "step" and step >= args.warmup_steps:
        return args.lr_gamma ** int(step / (args.lr_step_epochs * steps_per_epoch))
    return warmup_cosine(step, args.warmup_steps, total_steps, args.min_lr_ratio, cosine=args.schedule == "cosine")


@torch.no_grad()
def evaluate(model, ids, args: Args, carry: bool, device, autocast, max_batches: int = 0, ctx: Context | None = None) -> float:
    """Mean cross-entropy in nats per token over the split (or its first max_batches batches).

    Distributed: each rank takes its share of the streams (rows, which are independent) or of the
    window batches, and the sums are added over ranks: the same number as one process."""
    ctx = ctx or Context(device=device)
    model.eval()
    total = torch.zeros(2, device=device, dtype=torch.float64)  # loss sum, token count
    if args.batching == "stream":
        rows = distributed.shard(args.eval_batch_size, ctx)
        batches = iter(StreamBatches(ids, args.eval_batch_size, args.seq_len, device, rows=rows) if len(rows) else ())
        mine = lambda i: True  # noqa: E731
    else:
        batches = windows(ids, args.eval_batch_size, args.seq_len, device)
        mine = lambda i: i % ctx.world_size == ctx.rank  # noqa: E731
    state = None
    for i, (x, y) in enumerate(batches):
        if max_batches and i >= max_batches:
            break
        if not mine(i):
            continue
        with autocast():
            logits, state = model(x, state if carry else None)
        total[0] += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
        total[1] += y.numel()
    model.train()
    total = distributed.all_reduce_mean(ctx, total) * ctx.world_size
    return total[0].item() / total[1].item()


@contextmanager
def rank_zero_first(ctx: Context):
    """Rank 0 runs the block (a download, say) before the other ranks do."""
    if not ctx.is_main:
        distributed.barrier(ctx)
    yield
    if ctx.is_main:
        distributed.barrier(ctx)


def run_name(args: Args) -> str:
    return args.run_name or f"lm-{args.corpus}-{args.backbone.name}-{args.backbone.gradient}-s{args.seed}"


def main(args: Args) -> dict:
    """Train and evaluate; under torchrun every rank runs this (RankStopped when another rank fails)."""
    ctx = distributed.setup(pick_device(args.device), args.dist_timeout_s)
    try:
        return _main(args, ctx)
    except Exception as e:
        if not ctx.enabled or isinstance(e, RankStopped):
            raise
        last = Path(args.runs_dir) / run_name(args) / "checkpoints" / "last.pt"
        raise RankStopped(distributed.stopped_message(ctx, e, "", f"{last} (if it exists)")) from e
    finally:
        distributed.cleanup(ctx)


def _main(args: Args, ctx: Context) -> dict:
    device = ctx.device
    use_scan_backend(args.scan_backend, device)
    say = print if ctx.is_main else (lambda *a, **k: None)
    torch.manual_seed(args.seed)
    backbone = args.backbone
    name = run_name(args)
    config = {**dataclasses.asdict(args), "backbone_name": backbone.name, "command": " ".join(sys.argv),
              "world_size": ctx.world_size}
    run_dir = prepare_run_dir(args.runs_dir, name, config) if ctx.is_main else Path(args.runs_dir) / name

    with rank_zero_first(ctx):
        corpus = load_corpus(args.corpus, args.data_dir, args.cache_dir, verify=args.verify_data)
    train_ids = corpus.splits["train"]
    mine = range(ctx.rank * args.batch_size, (ctx.rank + 1) * args.batch_size)  # this rank's rows of the global batch
    carry = args.batching == "stream" and args.carry_state and backbone.name != "transformer"
    if args.batching == "stream" and args.carry_state and backbone.name == "transformer":
        say("note: the transformer does not carry its KV cache across batches; each batch starts afresh")
    if args.batching == "stream":
        train_stream = StreamBatches(train_ids, args.batch_size * ctx.world_size, args.seq_len, device, rows=mine)
        steps_per_epoch = len(train_stream)
    else:
        sampler = WindowSampler(train_ids, args.batch_size, args.seq_len, device, seed=args.seed,
                                rank=ctx.rank, world_size=ctx.world_size)
        steps_per_epoch = max(1, train_ids.numel() // (args.batch_size * ctx.world_size * args.seq_len))
    total_steps = args.steps or max(1, round(args.epochs * steps_per_epoch))
    eval_every = args.eval_every or steps_per_epoch

    model = LanguageModel(
        corpus.vocab_size, backbone, tie_weights=args.tie_weights,
        positional_embedding={"auto": None, "on": True, "off": False}[args.positional_embedding],
        max_len=args.seq_len,
    ).to(device)  # the same on every rank (and DDP broadcasts rank 0's)
    if ctx.rank > 0:
        torch.manual_seed(args.seed + ctx.rank)  # dropout differs across ranks
    net = distributed.wrap_ddp(model, ctx)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, args.beta2), weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args, total_steps, steps_per_epoch))
    use_amp = args.amp and device.type == "cuda"
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp)  # noqa: E731

    start_step, best_valid = 0, float("inf")
    last = run_dir / "checkpoints" / "last.pt"
    if args.resume and last.is_file():
        ckpt = load_checkpoint(last, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_step, best_valid = ckpt["step"], ckpt["best_valid_loss"]
        if args.batching == "window":
            sampler.generator.set_state(ckpt["sampler"].cpu())

    n_params = sum(p.numel() for p in model.parameters())
    unit = "char" if corpus.level == "char" else "word"
    ranks = f", batch {args.batch_size} per rank x {ctx.world_size} ranks" if ctx.enabled else ""
    say(f"{name}: {backbone.name} ({backbone.gradient}), {n_params:,} parameters; {args.corpus}: "
        f"{train_ids.numel():,} training {unit}s, vocabulary {corpus.vocab_size}; "
        f"{total_steps} steps ({steps_per_epoch} per epoch) on {device}{ranks}")
    metrics = MetricsLog(run_dir) if ctx.is_main else None
    log = metrics.log if metrics else (lambda step, values: None)

    def batches():
        """(x, y, first batch of a pass?) forever, resuming at start_step."""
        step = 0
        while True:
            if args.batching == "stream":
                for i, (x, y) in enumerate(train_stream):
                    if step >= start_step:
                        yield x, y, i == 0
                    step += 1
            else:
                if step >= start_step:
                    yield (*sampler.sample(), False)
                step += 1

    t0 = time.time()
    running = torch.zeros((), device=device)
    n_running = 0
    state = None
    progress = tqdm(range(start_step, total_steps), initial=start_step, total=total_steps, desc=name, mininterval=5,
                    disable=not ctx.is_main)
    for step, (x, y, new_pass) in zip(progress, batches()):
        if new_pass or not carry:
            state = None
        with autocast():
            logits, state = net(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        scheduler.step()
        state = detach_state(state) if carry else None
        running += loss.detach()
        n_running += 1

        done = step + 1
        if done % args.log_every == 0 or done == total_steps:
            train_loss = distributed.all_reduce_mean(ctx, running).item() / n_running  # the global batch's
            running.zero_()
            n_running = 0
            values = {"train/loss": train_loss, "lr": scheduler.get_last_lr()[0], "epoch": done / steps_per_epoch,
                      "time_s": time.time() - t0}
            progress.set_postfix(loss=f"{train_loss:.3f}")
            log(done, values)
        if done % eval_every == 0 or done == total_steps:
            valid_loss = evaluate(model, corpus.splits["valid"], args, carry, device, autocast,
                                  args.eval_batches if args.batching == "window" else 0, ctx)
            best_valid = min(best_valid, valid_loss)
            log(done, {"valid/loss": valid_loss, "valid/perplexity": math.exp(valid_loss),
                       **({"valid/bpc": valid_loss / math.log(2)} if unit == "char" else {})})
            payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "step": done, "best_valid_loss": best_valid,
                       "vocab": corpus.vocab, "config": config}
            if args.batching == "window":
                payload["sampler"] = sampler.generator.get_state()
            if ctx.is_main:
                save_checkpoint(last, payload)

    # Final numbers on whole splits.
    results = {"name": name, "corpus": args.corpus, "backbone": backbone.name, "gradient": backbone.gradient,
               "n_layers": backbone.n_layers, "d_model": backbone.d_model, "parameters": n_params,
               "steps": total_steps, "epochs": total_steps / steps_per_epoch, "world_size": ctx.world_size,
               "global_batch_size": args.batch_size * ctx.world_size}
    for split in ("valid", "test"):
        if split in corpus.splits:
            loss = evaluate(model, corpus.splits[split], args, carry, device, autocast, ctx=ctx)
            results[f"{split}_loss"] = loss
            results[f"{split}_perplexity"] = math.exp(loss)
            if unit == "char":
                results[f"{split}_bpc"] = loss / math.log(2)
            log(total_steps, {f"final/{split}_loss": loss})
    results["wall_time_s"] = time.time() - t0
    if ctx.enabled:
        results["max_parameter_divergence"] = distributed.max_parameter_divergence(ctx, model)
    if not ctx.is_main:
        return results
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    metrics.close()

    if args.sample_tokens:
        prompt = corpus.splits["valid"][: 1].view(1, 1).to(device)
        model.eval()
        n_new = min(args.sample_tokens, args.seq_len - 1)
        sample = model.generate(prompt, n_new, top_k=None, generator=torch.Generator(device=device).manual_seed(args.seed))
        print("\nsample:\n" + corpus.decode(sample[0].tolist()))

    def cell(split: str, key: str) -> str:
        return f"{results[f'{split}_{key}']:.3f}" if f"{split}_{key}" in results else "-"

    extra = " valid bpc | test bpc |" if unit == "char" else ""
    print(f"\n| run | corpus | backbone | gradient | layers x width | params | steps | valid loss | valid ppl | test ppl |{extra}")
    print("|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if unit == "char" else ""))
    row = (f"| {name} | {args.corpus} | {backbone.name} | {backbone.gradient} | {backbone.n_layers} x {backbone.d_model} | "
           f"{n_params:,} | {total_steps} | {cell('valid', 'loss')} | {cell('valid', 'perplexity')} | {cell('test', 'perplexity')} |")
    if unit == "char":
        row += f" {cell('valid', 'bpc')} | {cell('test', 'bpc')} |"
    print(row)
    return results


if __name__ == "__main__":
    try:
        main(parse_args())
    except RankStopped as e:
        sys.exit(f"error: {e}")
