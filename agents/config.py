"""The agent's configuration: one frozen dataclass (tyro turns it into flags), presets, plain-data I/O.

Presets are complete sets of defaults applied before the flags (the same scheme as scripts/train_lm.py):
`--preset hopper-medium` takes the DT paper's settings for Minari's mujoco/hopper/medium-v0, and any
flag after it overrides one field. `--config runs/NAME/config.yaml` does the same with a finished
run's config, which is how a config.yaml re-runs its run. Naming `backbone:NAME` keeps the preset's
backbone fields when NAME is the preset's backbone and starts from NAME's defaults otherwise.

`to_plain` / `from_plain` turn a config into dicts, lists and numbers (for config.yaml and for
checkpoints, which must load with weights_only=True) and back.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import tyro
import yaml

from envs.builtin_datasets import DEFAULT_DATASET_ID
from sequence_models.backbone import BackboneChoice, BackboneConfig, MinGRUConfig, TransformerConfig, backbone_config
from sequence_models.kernels.backend import ScanBackend

PRESET_NAMES = ("quick", *(f"{env}-{quality}" for env in ("hopper", "halfcheetah", "walker2d")
                           for quality in ("simple", "medium", "expert")))
PresetName = Literal[PRESET_NAMES]  # type: ignore[valid-type]
EvalMode = Literal["window", "recurrent"]
Vectorization = Literal["auto", "sync", "async"]


@dataclass(frozen=True)
class AgentConfig:
    preset: PresetName = "quick"
    """named set of defaults (see agents/config.py PRESETS); the other flags override it"""

    # data
    dataset: str = DEFAULT_DATASET_ID
    """Minari dataset id (builtin/... datasets are made locally, offline)"""
    download: bool = False
    """download the dataset from the Minari server when it is not local (needs internet)"""
    return_scale: float = 1e-3
    """R̂ is multiplied by this before embedding (DT: 1/1000)"""
    state_clip: float = 10.0
    """normalised states are clipped to ±this, in training and evaluation alike"""
    max_ep_len: int = 0
    """size of the timestep embedding (timesteps are clipped to it); 0: the env's time limit"""

    # model
    backbone: BackboneChoice = MinGRUConfig(d_model=64, n_layers=2, dropout=0.0)
    """sequence backbone, a subcommand with its own options: backbone:mingru --backbone.expansion 1.5"""
    context_len: int = 20
    """K: steps per training segment and per evaluation window"""
    segment_start: Literal["any", "fit"] = "any"
    """training segments start anywhere in an episode (DT, CORL; segments near the end are padded) or
    "fit": within length - K, so segments are full and K >= episode length trains on whole episodes"""

    # optimisation
    steps: int = 1000
    """optimizer steps"""
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    """AdamW decay on weight matrices; none on norms, embeddings, biases and recurrent parameters"""
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 100
    """linear warm-up from lr/warmup_steps to lr"""
    cosine: bool = True
    """cosine decay to min_lr_ratio x lr after the warm-up (off: constant, as DT)"""
    min_lr_ratio: float = 0.1
    grad_clip: float = 0.25
    """grad-norm clip (0: none)"""
    amp: bool = True
    """bfloat16 autocast on CUDA (scans stay float32); ignored on CPU"""
    compile: bool = False
    """torch.compile the model for training"""
    scan_backend: ScanBackend = "auto"
    """scan kernels: auto (fused C++ on CPU, Triton on CUDA, else PyTorch), cpu, triton or torch"""

    # run
    seed: int = 0
    device: str = "auto"
    """auto (cuda if available), cpu, cuda, cuda:1, ..."""
    cpu_threads: int = 1
    """torch threads on CPU (0: torch's default). 1 is fastest for small models, and far faster on a shared machine"""
    run_name: str = ""
    """folder under runs_dir (default: <dataset>-<backbone>-<gradient>-s<seed>)"""
    runs_dir: str = "runs"
    resume: bool = False
    """continue runs_dir/run_name from checkpoints/last.pt: same data order, optimizer, schedule and RNG"""
    log_every: int = 50
    checkpoint_every: int = 500
    """steps between writes of checkpoints/last.pt (also written at the end)"""
    eval_every: int = 0
    """steps between evaluations (best.pt follows the score); 0: only at the end"""
    progress: bool = True
    """show a progress bar"""
    dist_timeout_s: float = 600.0
    """under torchrun: seconds a rank waits in a collective for the others before it gives up (a hung rank)"""

    # evaluation
    eval_targets: tuple[float, ...] = ()
    """return targets to condition on; empty: the dataset's best and mean episode returns"""
    eval_episodes: int = 10
    """episodes per target (all targets x episodes run in one vector env)"""
    eval_mode: EvalMode = "recurrent"
    """window: re-run the last K steps each step (DT); recurrent: carry the backbone state (KV cache for the transformer)"""
    eval_vectorization: Vectorization = "auto"
    """sync (one process), async (one process per env) or auto (async for many envs on many cores)"""
    eval_max_steps: int = 0
    """cap on steps per evaluation episode; 0: the env's time limit"""
    eval_kv_steps: int = -1
    """recurrent mode, transformer: steps its KV cache keeps (-1: context_len, the trained span; 0: the whole episode)"""

    def __post_init__(self) -> None:
        problems = []
        if self.context_len < 1:
            problems.append(f"context_len must be >= 1, got {self.context_len}")
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            problems.append("weight_decay, grad_clip and warmup_steps must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.return_scale <= 0 or self.state_clip <= 0:
            problems.append("return_scale and state_clip must be > 0")
        if self.max_ep_len < 0 or self.eval_max_steps < 0 or self.eval_every < 0 or self.cpu_threads < 0:
            problems.append("max_ep_len, eval_max_steps, eval_every and cpu_threads must be >= 0")
        if self.log_every < 1 or self.checkpoint_every < 1:
            problems.append("log_every and checkpoint_every must be >= 1")
        if self.eval_kv_steps < -1:
            problems.append(f"eval_kv_steps must be -1 (context_len), 0 (all) or positive, got {self.eval_kv_steps}")
        if not self.dist_timeout_s > 0:
            problems.append(f"dist_timeout_s must be > 0, got {self.dist_timeout_s}")
        if self.eval_episodes < 1:
            problems.append(f"eval_episodes must be >= 1, got {self.eval_episodes}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def name(self) -> str:
        if self.run_name:
            return self.run_name
        dataset = self.dataset.replace("/", "-").removesuffix("-v0")
        return f"{dataset}-{self.backbone.name}-{self.backbone.gradient}-s{self.seed}"


def _dt(dataset: str, targets: tuple[float, float], preset: str) -> AgentConfig:
    """The Decision Transformer paper's gym settings (DESIGN.md)."""
    return AgentConfig(
        preset=preset, dataset=dataset, backbone=TransformerConfig(d_model=128, n_layers=3, n_heads=1, dropout=0.1),
        context_len=20, steps=100_000, batch_size=64, lr=1e-4, weight_decay=1e-4, warmup_steps=10_000,
        cosine=False, grad_clip=0.25, eval_targets=targets, eval_episodes=10, eval_every=10_000,
        checkpoint_every=1000, log_every=100, max_ep_len=1000, eval_mode="window", cpu_threads=0,
    )


DT_TARGETS = {"hopper": (3600.0, 1800.0), "halfcheetah": (12000.0, 6000.0), "walker2d": (5000.0, 2500.0)}
PRESETS: dict[str, Callable[[], AgentConfig]] = {  # keys: PRESET_NAMES
    # The default: the built-in InvertedDoublePendulum dataset, a small minGRU, minutes on 2 CPU cores.
    "quick": lambda: AgentConfig(),
    **{
        f"{env}-{quality}": (lambda env=env, quality=quality: _dt(f"mujoco/{env}/{quality}-v0", DT_TARGETS[env], f"{env}-{quality}"))
        for env in DT_TARGETS
        for quality in ("simple", "medium", "expert")
    },
}


def to_plain(config: AgentConfig) -> dict[str, Any]:
    """Dicts, lists, numbers and strings only; the backbone carries its registry name."""
    plain = dataclasses.asdict(config)
    plain["backbone"] = {"name": config.backbone.name, **dataclasses.asdict(config.backbone)}
    plain["eval_targets"] = [float(t) for t in config.eval_targets]
    return plain


def from_plain(plain: dict[str, Any]) -> AgentConfig:
    plain = dict(plain)
    backbone = dict(plain.pop("backbone"))
    fields = {f.name for f in dataclasses.fields(AgentConfig)}
    unknown = set(plain) - fields
    if unknown:
        raise ValueError(f"unknown config field(s) {sorted(unknown)}")
    plain["eval_targets"] = tuple(float(t) for t in plain.get("eval_targets", ()))
    return AgentConfig(**plain, backbone=backbone_config(backbone.pop("name"), **backbone))


def load_config_file(path: str | Path) -> AgentConfig:
    data = yaml.safe_load(Path(path).read_text())
    data = data.get("config", data)  # config.yaml holds {"command": ..., "config": {...}}
    return from_plain(data)


def parse_args(argv: list[str] | None = None, description: str | None = None) -> AgentConfig:
    """--preset NAME or --config FILE first (the defaults), then every other flag through tyro."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(PRESETS), default=None)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    if known.config:
        default = load_config_file(known.config)
        if known.preset:
            raise SystemExit("give --preset or --config, not both")
    else:
        preset = known.preset or "quick"
        default = dataclasses.replace(PRESETS[preset](), preset=preset)
    try:
        return tyro.cli(AgentConfig, default=default, args=rest, description=description)
    except ValueError as e:  # a config that does not fit: say what, not a traceback
        raise SystemExit(f"error: {e}") from None


def describe_backbone(config: BackboneConfig) -> str:
    return f"{config.name} ({config.gradient}), {config.n_layers} x {config.d_model}"
