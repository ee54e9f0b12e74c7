"""The sequence papers' claims at CPU scale: selective copying, DSF, Tiny Shakespeare.

Each claim trains its models from one preset (copy_config / lm_config PRESETS: claims-copy,
claims-dsf, claims-shakespeare), changing only the backbone, so every model gets the same budget,
data and seed. Each returns a ClaimResult (claim_runs.py): the claims table rows (the paper's number,
ours, the verdict, whether every run's curve was flat over its last quarter) and one row and one
curve per run. `smoke=True` shrinks every budget to seconds: it checks the machinery, not a claim.
`device` is every run's --device (auto: CUDA when available).

The agent claim lives in agents/benchmarks/claims.py (sequence_models never imports agents).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from ..backbone_configs import backbone_config
from ..tasks import copy_config, copy_training, lm_config, lm_training
from ..training.config import BACKBONE_SHAPE, override
from .claim_runs import ClaimResult, read_curve, train_many

# Paper numbers (DESIGN.md): minGRU paper Table 1 (L=4096); DSF paper, WikiText-103, 3 x GRU-512.
MINGRU_COPY_BY_DEPTH = (37.0, 96.8, 99.5)
DSF_PAPER_PPL = {"bptt": 28.32, "dsf": 31.54, "truncated": 46.60}
SHAKESPEARE_PAPER = {"mingru": 1.548, "transformer": 1.547}
SHAKESPEARE_MARGIN = 0.05  # nats
# Mamba paper Table 1 (selective copying): S6 layers 97.0-99.8 %, S4 18.3 % (no gate) to 57.0 % (gated).
MAMBA_PAPER_COPY = "S6: 97.0-99.8 %"
S4_PAPER_COPY = "S4: 18.3-57.0 %"


def _smoke_copy(config):
    config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, d_model=8))
    return override(config, seq_len=8, n_memorize=2, steps=6, batch_size=8, eval_every=2, log_every=2,
                    eval_examples=16, test_examples=16, warmup_steps=1)


def _smoke_lm(config):
    """Seconds on a small corpus; on the full one the stream evaluations read the whole split."""
    config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, d_model=16))
    return override(config, steps=6, eval_every=2, log_every=2, seq_len=16, batch_size=4, eval_batch_size=4,
                    eval_batches=2, warmup_steps=1, verify_data=False)


def _backbone(config, name: str, **fields):
    return dataclasses.replace(config, backbone=backbone_config(name, **fields))


def copying(runs_dir: Path, smoke: bool = False, seed: int = 0, workers: int = 1, device: str = "auto") -> ClaimResult:
    """minGRU / minLSTM at 1, 2, 3 layers, LRU and transformer (3 layers): test accuracy at one budget."""
    base = override(copy_config.PRESETS["claims-copy"](), seed=seed, device=device)
    base = _smoke_copy(base) if smoke else base
    width = dict(d_model=base.backbone.d_model, dropout=0.0)
    models = [(f"{n} {k} layer{'s' * (k > 1)}", n, dict(n_layers=k, expansion=base.backbone.expansion, **width))
              for n in ("mingru", "minlstm") for k in (1, 2, 3)]
    models += [("lru 3 layers", "lru", dict(n_layers=3, **width)),
               ("transformer 3 layers", "transformer", dict(n_layers=3, n_heads=4, **width)),
               ("mamba 3 layers", "mamba", dict(n_layers=3, **width)),
               ("s4d 3 layers", "s4d", dict(n_layers=3, **width))]
    result = ClaimResult("copying", f"Selective copying L={base.seq_len} M={base.n_memorize}, {base.steps} steps x "
                         f"{base.batch_size}, seed {seed}", tolerance=0.01)
    accuracy: dict[str, float] = {}
    runs = train_many([(f"copy-{label.replace(' ', '-')}", copy_training.run, _backbone(base, name, **fields))
                       for label, name, fields in models], runs_dir, workers)
    for label, _, _ in models:
        r = runs[f"copy-{label.replace(' ', '-')}"]
        accuracy[label] = 100 * r["test_accuracy"]
        result.run_row(label, read_curve(r["run_dir"], "valid/accuracy", label), r,
                       parameters=r["parameters"], steps=r["steps"], test_accuracy_pct=accuracy[label])
    for family in ("mingru", "minlstm"):
        labels = [f"{family} {k} layer{'s' * (k > 1)}" for k in (1, 2, 3)]
        acc = [accuracy[x] for x in labels]
        ours = " / ".join(f"{a:.1f}" for a in acc) + " %"
        paper_3 = "99.5 % (L=4096)" if family == "mingru" else "- (minGRU: 99.5 % at L=4096)"
        result.claim(f"{family}: 3 layers >= 99 % test accuracy", paper_3, f"{acc[2]:.1f} %",
                     acc[2] >= 99.0, labels[2:])
        paper = " / ".join(f"{a:g}" for a in MINGRU_COPY_BY_DEPTH) + " %" if family == "mingru" else "rises with depth"
        result.claim(f"{family}: accuracy rises with depth (1 / 2 / 3 layers)", paper, ours,
                     acc[0] <= acc[1] <= acc[2] and acc[0] < acc[2], labels)
    others = ["lru 3 layers", "transformer 3 layers"]
    result.claim("LRU / transformer, 3 layers, same budget", "-", " / ".join(f"{accuracy[x]:.1f}" for x in others) + " %",
                 None, others)
    for label, paper in (("mamba 3 layers", MAMBA_PAPER_COPY), ("s4d 3 layers", S4_PAPER_COPY)):
        result.claim(f"{label.split()[0]}, 3 layers, same budget", paper, f"{accuracy[label]:.1f} %", None, [label])
    return result


def _lm_row(result: ClaimResult, r: dict[str, Any], label: str) -> float:
    loss = r["valid_loss"]
    result.run_row(label, read_curve(r["run_dir"], "valid/loss", label), r,
                   parameters=r["parameters"], steps=r["steps"], valid_loss=loss, valid_perplexity=math.exp(loss))
    return loss


def dsf(runs_dir: Path, data_dir: str | None = None, smoke: bool = False, seed: int = 0,
        linear: bool = True, workers: int = 1, device: str = "auto") -> ClaimResult:
    """GRU / LSTM / Elman RNN with bptt, dsf, truncated gradients (and minGRU / minLSTM / LRU with bptt and
    dsf when `linear`): validation loss on Tiny Shakespeare characters at one budget."""
    base = override(lm_config.PRESETS["claims-dsf"](), seed=seed, data_dir=data_dir, device=device)
    base = _smoke_lm(base) if smoke else base
    d = base.backbone.d_model
    result = ClaimResult("dsf", f"DSF: Tiny Shakespeare chars, 1 layer x {d}, stream batching, context {base.seq_len}, "
                         f"{base.steps} steps x {base.batch_size}, seed {seed}", tolerance=0.02)
    paper = " < ".join(f"{DSF_PAPER_PPL[m]:g}" for m in ("bptt", "dsf", "truncated")) + " ppl"
    plan = [(cell, mode) for cell in ("gru", "lstm", "rnn") for mode in ("bptt", "dsf", "truncated")]
    plan += [(cell, mode) for cell in ("mingru", "minlstm", "lru") for mode in ("bptt", "dsf")] if linear else []
    runs = train_many([(f"dsf-{cell}-{mode}", lm_training.run,
                        _backbone(base, cell, d_model=d, n_layers=1, gradient=mode)) for cell, mode in plan],
                      runs_dir, workers)
    for cell in ("gru", "lstm", "rnn"):
        loss = {mode: _lm_row(result, runs[f"dsf-{cell}-{mode}"], f"{cell} {mode}")
                for mode in ("bptt", "dsf", "truncated")}
        labels = [f"{cell} {m}" for m in ("bptt", "dsf", "truncated")]
        result.claim(f"{cell}: valid loss BPTT < DSF < truncated", f"{paper} (WikiText-103, 3 x GRU-512)",
                     " < ".join(f"{loss[m]:.3f}" for m in ("bptt", "dsf", "truncated")) + " nats",
                     loss["bptt"] < loss["dsf"] < loss["truncated"], labels)
        ppl = {m: math.exp(v) for m, v in loss.items()}
        result.claim(f"{cell}: perplexity ratios DSF/BPTT, truncated/BPTT",
                     f"{DSF_PAPER_PPL['dsf'] / DSF_PAPER_PPL['bptt']:.3f}, "
                     f"{DSF_PAPER_PPL['truncated'] / DSF_PAPER_PPL['bptt']:.3f}",
                     f"{ppl['dsf'] / ppl['bptt']:.3f}, {ppl['truncated'] / ppl['bptt']:.3f}", None, labels)
    if linear:
        for cell in ("mingru", "minlstm", "lru"):
            loss = {mode: _lm_row(result, runs[f"dsf-{cell}-{mode}"], f"{cell} {mode}") for mode in ("bptt", "dsf")}
            result.claim(f"{cell}: DSF against BPTT (valid loss)", "-",
                         f"{loss['dsf']:.3f} vs {loss['bptt']:.3f} nats (ppl ratio "
                         f"{math.exp(loss['dsf'] - loss['bptt']):.3f})", None, [f"{cell} bptt", f"{cell} dsf"])
    return result


def shakespeare(runs_dir: Path, data_dir: str | None = None, smoke: bool = False, seed: int = 0,
                workers: int = 1, device: str = "auto") -> ClaimResult:
    """minGRU, minLSTM, LRU and transformer at 2 x 128 and one budget: the gap to the transformer."""
    base = override(lm_config.PRESETS["claims-shakespeare"](), seed=seed, data_dir=data_dir, device=device)
    base = _smoke_lm(base) if smoke else base
    shape = {name: getattr(base.backbone, name) for name in BACKBONE_SHAPE}
    models = {"mingru": {}, "transformer": dict(n_heads=4), "minlstm": {}, "lru": {}}  # the claim's pair first
    result = ClaimResult("shakespeare", f"Tiny Shakespeare chars, {shape['n_layers']} x {shape['d_model']}, context "
                         f"{base.seq_len}, {base.steps} steps x {base.batch_size}, seed {seed}", tolerance=0.02)
    runs = train_many([(f"shakespeare-{name}", lm_training.run, _backbone(base, name, **shape, **extra))
                       for name, extra in models.items()], runs_dir, workers)
    loss = {name: _lm_row(result, runs[f"shakespeare-{name}"], name) for name in models}
    gap = loss["mingru"] - loss["transformer"]
    paper_gap = SHAKESPEARE_PAPER["mingru"] - SHAKESPEARE_PAPER["transformer"]
    # The paper's point is that minGRU is competitive with the transformer, so the claim is one-sided: a gap
    # below -0.05 (minGRU ahead) holds it too; the README says whether the tie itself is reproduced.
    claim = f"minGRU no worse than the transformer (loss gap minGRU - transformer <= +{SHAKESPEARE_MARGIN} nats)"
    result.claim(claim,
                 f"{SHAKESPEARE_PAPER['mingru']} vs {SHAKESPEARE_PAPER['transformer']} (gap {paper_gap:+.3f}; 6 x 384, "
                 "5000 steps)", f"{loss['mingru']:.3f} vs {loss['transformer']:.3f} (gap {gap:+.3f})",
                 gap <= SHAKESPEARE_MARGIN, ["mingru", "transformer"])
    result.claim("minLSTM / LRU, same budget (valid loss)", "-",
                 f"{loss['minlstm']:.3f} / {loss['lru']:.3f}", None, ["minlstm", "lru"])
    return result


SEQUENCE_CLAIMS = ("copying", "dsf", "shakespeare")
