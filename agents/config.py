"""The agent's configuration: one frozen dataclass (tyro turns it into flags) and its presets.

It nests the training core's RunConfig (seed, device, run name, cadence, resume, ...) and
OptimConfig (lr, schedule, clip, ...) without a prefix, so every flag is flat: `--seed 1 --lr 3e-4`.
`--preset hopper-medium` takes the DT paper's settings for Minari's mujoco/hopper/medium-v0, and any
flag after it overrides one field; `--preset dt --dataset mujoco/ant/medium-v0` takes the same
settings for any Minari MuJoCo dataset, with the paper's targets for hopper, halfcheetah and
walker2d and, for another family, targets derived from the dataset's best return R at run time:
(R, R - |R|/2), the paper's "expert, half of it" pattern (the run prints them); `--config runs/NAME/config.yaml` does the same with a finished
run's config (sequence_models/training/config.py: parse_config). Naming `backbone:NAME` keeps the
preset's backbone fields when NAME is the preset's backbone and starts from NAME's defaults otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, ClassVar, Literal

from envs.minari_ids import DEFAULT_DATASET_ID, mujoco_family, mujoco_id_problem
from sequence_models.backbone_configs import BackboneChoice, BackboneConfig, MinGRUConfig, TransformerConfig
from sequence_models.training.config import Optim, OptimConfig, Run, RunConfig, check, parse_config

PRESET_NAMES = ("quick", "dt", *(f"{env}-{quality}" for env in ("hopper", "halfcheetah", "walker2d")
                                 for quality in ("simple", "medium", "expert")), "claims-cheetah")
PresetName = Literal[PRESET_NAMES]  # type: ignore[valid-type]
EvalMode = Literal["window", "recurrent"]
TokenLayout = Literal["dt", "step"]
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
    allow_foreign_env: bool = False
    """accept an env spec (from the dataset or a checkpoint) whose entry point or wrappers are not Gymnasium's
    registered ones: that imports and runs code the file names. Only for files you trust"""
    return_scale: float = 1e-3
    """R̂ is multiplied by this before embedding (DT: 1/1000, which puts D4RL's targets at 3.6-12 and the default
    dataset's best return at 9.4); choose it so the high target enters as a few units (claims-cheetah: 0.01)"""
    state_clip: float = 10.0
    """normalised states are clipped to ±this, in training and evaluation alike"""
    max_ep_len: int = 0
    """size of the timestep embedding (timesteps are clipped to it); 0: the env's time limit"""

    # model
    backbone: BackboneChoice = MinGRUConfig(d_model=64, n_layers=2, dropout=0.0)
    """sequence backbone, a subcommand with its own options: backbone:mingru --backbone.expansion 1.5"""
    token_layout: TokenLayout = "step"
    """step: one token per step from R̂_t, s_t and a_{t-1} together, â_t read there; dt: DT's three tokens per step
    (R̂_t, s_t, a_t), â_t read at s_t (agents/model.py; the DT-paper presets use dt)"""
    context_len: int = 20
    """K: steps per training segment and per evaluation window"""
    segment_start: Literal["any", "fit"] = "any"
    """training segments start anywhere in an episode (DT, CORL; segments near the end are padded) or
    "fit": within length - K, so segments are full and K >= episode length trains on whole episodes"""

    # training
    steps: int = 1000
    """optimizer steps"""
    batch_size: int = 64
    """segments per step (per rank under torchrun: the global batch is batch_size x ranks)"""
    run: Run = RunConfig()
    optim: Optim = OptimConfig()

    # evaluation
    eval_targets: tuple[float, ...] = ()
    """return targets to condition on; empty: the dataset's best and mean episode returns"""
    eval_episodes: int = 10
    """episodes per target (all targets x episodes run in one vector env)"""
    final_eval_episodes: int = 0
    """episodes per target of the evaluation after the last step, the run's score (0: eval_episodes); one episode
    here is bimodal (the cheetah flips or does not), so 10 episodes leave a standard error of ~10 normalized"""
    eval_mode: EvalMode = "recurrent"
    """window: re-run the last K steps each step (DT); recurrent: carry the backbone state (KV cache for the transformer)"""
    eval_vectorization: Vectorization = "auto"
    """sync (one process), async (one process per env) or auto (async for many envs on many cores)"""
    eval_max_steps: int = 0
    """cap on steps per evaluation episode; 0: the env's time limit"""
    eval_kv_steps: int = -1
    """recurrent mode, transformer: steps its KV cache keeps (-1: context_len, the trained span; 0: the whole episode)"""
    eval_video: int = 0
    """render this many evaluation episodes per target to runs/NAME/videos/ (MP4, else GIF) and tensorboard/wandb:
    the same seeds and policy replayed in one rgb_array env after the evaluation (pip install -e '.[video]';
    headless: MUJOCO_GL=egl or osmesa)"""

    RESUMABLE: ClassVar[tuple[str, ...]] = (
        "steps", "download", "allow_foreign_env", "eval_targets", "eval_episodes", "final_eval_episodes", "eval_mode",
        "eval_vectorization", "eval_max_steps", "eval_kv_steps", "eval_video")
    """fields a resumed run may change: a longer run, and how it is evaluated"""
    DEFAULTS_BEFORE: ClassVar[dict[str, object]] = {"token_layout": "dt"}
    """what a saved config (config.yaml, checkpoint) that lacks one of these fields meant: it was written before
    the field existed, when the behaviour was this value (from_plain fills it in instead of today's default)"""

    def __post_init__(self) -> None:
        problems = []
        if self.context_len < 1:
            problems.append(f"context_len must be >= 1, got {self.context_len}")
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.return_scale <= 0 or self.state_clip <= 0:
            problems.append("return_scale and state_clip must be > 0")
        if self.max_ep_len < 0 or self.eval_max_steps < 0:
            problems.append("max_ep_len and eval_max_steps must be >= 0")
        if self.eval_kv_steps < -1:
            problems.append(f"eval_kv_steps must be -1 (context_len), 0 (all) or positive, got {self.eval_kv_steps}")
        if self.eval_episodes < 1 or self.final_eval_episodes < 0:
            problems.append(f"eval_episodes must be >= 1 and final_eval_episodes >= 0, got {self.eval_episodes} and "
                            f"{self.final_eval_episodes}")
        if not 0 <= self.eval_video <= self.eval_episodes:
            problems.append(f"eval_video must be in [0, eval_episodes={self.eval_episodes}], got {self.eval_video}")
        if (typo := mujoco_id_problem(self.dataset)) is not None:
            problems.append(typo)
        check(problems)

    def default_run_name(self) -> str:
        dataset = self.dataset.replace("/", "-").removesuffix("-v0")
        return f"{dataset}-{self.backbone.name}-{self.backbone.gradient}-s{self.run.seed}"

    @property
    def name(self) -> str:
        """The run's folder name before -2, -3, ... are added."""
        return self.run.run_name or self.default_run_name()


def _dt(dataset: str, targets: tuple[float, ...], preset: str) -> AgentConfig:
    """The Decision Transformer paper's gym settings (DESIGN.md)."""
    return AgentConfig(
        preset=preset, dataset=dataset, backbone=TransformerConfig(d_model=128, n_layers=3, n_heads=1, dropout=0.1),
        token_layout="dt", context_len=20, steps=100_000, batch_size=64, max_ep_len=1000, eval_targets=targets,
        eval_episodes=10, eval_mode="window",
        run=RunConfig(eval_every=10_000, checkpoint_every=1000, log_every=100, cpu_threads=0),
        optim=OptimConfig(lr=1e-4, weight_decay=1e-4, warmup_steps=10_000, schedule="constant", grad_clip=0.25),
    )


DT_TARGETS = {"hopper": (3600.0, 1800.0), "halfcheetah": (12000.0, 6000.0), "walker2d": (5000.0, 2500.0)}
PRESETS: dict[str, Callable[[], AgentConfig]] = {  # keys: PRESET_NAMES
    # The default: the built-in InvertedDoublePendulum dataset, a small minGRU, minutes on 2 CPU cores.
    "quick": lambda: AgentConfig(),
    # DT's settings for any --dataset; targets by family (with_family_targets, derive_dt_targets)
    "dt": lambda: _dt("mujoco/hopper/medium-v0", (), "dt"),
    **{
        f"{env}-{quality}": (lambda env=env, quality=quality: _dt(f"mujoco/{env}/{quality}-v0", DT_TARGETS[env], f"{env}-{quality}"))
        for env in DT_TARGETS
        for quality in ("simple", "medium", "expert")
    },
    # The agent claim at CPU scale (scripts/claims.py --claim agents): the built-in HalfCheetah gaits dataset,
    # on which backbones and context lengths differ; 2 x 64, whole episodes (K = the 250-step time limit,
    # segments that fit, batch 5: 1250 timesteps a step, as 64 x 20), 1000 steps, evaluated every 250 steps on
    # 10 episodes per target (the dataset's best and mean returns) and on 50 after the last step (the score),
    # one CPU thread per run. Whole episodes won issue 18's ablation (README): minGRU 96.2 vs 86.8 at K=20,
    # the transformer 95.4 vs 95.1. Return scale 0.01: the best return (736) enters as 7.4, where DT's 1/1000
    # puts D4RL's targets (3.6-12); at 1/1000 (0.74) GRU and LRU trailed the transformer by 24 and 28 points.
    "claims-cheetah": lambda: AgentConfig(
        preset="claims-cheetah", dataset="builtin/halfcheetah/gaits-v0", return_scale=0.01, context_len=250,
        segment_start="fit", steps=1000, batch_size=5, final_eval_episodes=50,
        run=RunConfig(eval_every=250, checkpoint_every=500, log_every=50, cpu_threads=1),
    ),
}


def with_family_targets(config: AgentConfig) -> AgentConfig:
    """--preset dt without --eval-targets: the DT paper's targets when it lists the dataset's family."""
    family = mujoco_family(config.dataset)
    if config.preset == "dt" and not config.eval_targets and family in DT_TARGETS:
        return dataclasses.replace(config, eval_targets=DT_TARGETS[family])
    return config


def derive_dt_targets(return_max: float) -> tuple[float, float]:
    """Targets for a family the DT paper does not list: the dataset's best return R and R - |R|/2
    (half of R when R > 0, as the paper's pairs; still the lower target when returns are negative)."""
    return (float(return_max), float(return_max) - abs(float(return_max)) / 2)


def parse_args(argv: list[str] | None = None, description: str | None = None) -> AgentConfig:
    """--preset NAME or --config FILE first (the defaults), then every other flag through tyro."""
    return with_family_targets(parse_config(AgentConfig, PRESETS, "quick", "agent", argv, description))


def describe_backbone(config: BackboneConfig) -> str:
    return f"{config.name} ({config.gradient}), {config.n_layers} x {config.d_model}"
