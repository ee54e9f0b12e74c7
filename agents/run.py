"""One agent run: dataset -> model -> the training core's loop -> evaluation -> results.json.

The run folder, checkpoints, resume, NaN guard, Ctrl-C and torchrun handling are the core's
(sequence_models/training/loop.py and run_folder.py, which describe the folder once). What is the
agent's: the dataset and its sampler, the DecisionModel, the evaluation at the return targets (best.pt
follows the normalized score at the first target), and results.json's fields:

    dataset, env_id, backbone, gradient, parameters, reference, note, dataset_return_mean,
    dataset_normalized_mean, final (the evaluation), final_score / best_score (per target), best,
    steps, train_seconds, wall_time_s; under torchrun also distributed (world size, batch per rank,
    global batch, how far the ranks' parameters drifted apart: 0.0 when in sync).

Under torchrun --batch-size is per rank (global batch = batch_size x world size, each rank its slice
of one seeded stream) and evaluation episodes are split across ranks and gathered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.checkpoints import build_model, check_shapes
from agents.config import AgentConfig, derive_dt_targets, describe_backbone
from agents.evaluator import EvalReport, evaluate, with_time_limit
from agents.trainer import agent_loss
from agents.videos import check_video_support, record_videos
from envs.builtin_datasets import BUILTIN_DATASETS, ensure_builtin_dataset
from envs.dataset_info import DatasetInfo
from envs.eval_env import eval_env_spec
from envs.segment_sampler import SegmentSampler
from envs.trajectory_store import TrajectoryStore
from sequence_models.training.checkpoint import CheckpointError
from sequence_models.training.distributed import Context
from sequence_models.training.loop import Evaluation, Setup, run_training
from sequence_models.training.run_folder import Video

SCRIPT = "scripts/train_agent.py"


def load_store(config: AgentConfig) -> TrajectoryStore:
    if config.dataset in BUILTIN_DATASETS:
        ensure_builtin_dataset(config.dataset)
    return TrajectoryStore.from_dataset_id(config.dataset, download=config.download,
                                           allow_foreign_code=config.allow_foreign_env)


def evaluation_seed(config: AgentConfig, seed: int | None = None) -> int:
    """Episode e of every target resets with this + e (apart from the training seed's own stream)."""
    return config.run.seed + 10_000 if seed is None else seed


def run_evaluation(model, config: AgentConfig, info: DatasetInfo, targets, mode: str | None = None,
                   episodes: int | None = None, seed: int | None = None, ctx: Context | None = None) -> EvalReport:
    """evaluate() with the run's settings, in the env the dataset names (its spec, else its id)."""
    reference, reason = info.reference_with_reason
    return evaluate(
        model, info.eval_env_spec or config.dataset, list(targets), episodes or config.eval_episodes,
        mode=mode or config.eval_mode, context_len=config.context_len, return_scale=config.return_scale,
        seed=evaluation_seed(config, seed), max_steps=config.eval_max_steps,
        vectorization=config.eval_vectorization, reference=reference, no_reference_reason=reason,
        kv_steps=config.eval_kv_steps, ctx=ctx, allow_foreign_code=config.allow_foreign_env, amp=config.run.amp,
    )


def run_videos(model, config: AgentConfig, info: DatasetInfo, targets, episodes: int, out_dir: Path, step: int,
               mode: str | None = None, seed: int | None = None, prefix: str = "") -> tuple[list[Video], float]:
    """The first `episodes` evaluation episodes of each target replayed in a rendering env (agents/videos.py):
    the same env spec and time limit, seeds, mode and context as run_evaluation; (videos, env steps/s)."""
    spec = with_time_limit(eval_env_spec(info.eval_env_spec or config.dataset,
                                         allow_foreign_code=config.allow_foreign_env), config.eval_max_steps)
    return record_videos(model, spec, list(targets), episodes, out_dir, step, seed=evaluation_seed(config, seed),
                         mode=mode or config.eval_mode, context_len=config.context_len,
                         return_scale=config.return_scale, kv_steps=config.eval_kv_steps,
                         reference=info.reference_with_reason[0], prefix=prefix)


def eval_scalars(report: EvalReport) -> dict[str, float]:
    values = {"eval/env_steps_per_s": report.env_steps_per_s}
    for t in report.targets:
        values[f"eval/return@{t.target:g}"] = t.return_mean
        if t.normalized is not None:
            values[f"eval/normalized@{t.target:g}"] = float(sum(t.normalized) / len(t.normalized))
    return values


def recurrent_eval_note(config: AgentConfig, episode_steps: int) -> str:
    """A note for a backbone whose state drifts when it runs past the windows it was trained on (S4D), evaluated
    recurrently over episodes longer than its context."""
    if not (config.backbone.window_trained_state_drifts and config.eval_mode == "recurrent"
            and config.context_len < episode_steps):
        return ""
    return (f"note: {config.backbone.name} trained on {config.context_len}-step windows and evaluated recurrently "
            f"over episodes of up to {episode_steps} steps can score far below window evaluation (README, the parity "
            f"table: 11.7 against 78.5); --eval-mode window, or whole episodes: --context-len {episode_steps} "
            f"--segment-start fit")


class AgentTask:
    """The agent as a training-core task (sequence_models.training.loop.Task)."""

    resumable_fields = AgentConfig.RESUMABLE

    def __init__(self, config: AgentConfig, setup: Setup):
        self.config, self.ctx = config, setup.ctx
        self.store = load_store(config)
        self.info = DatasetInfo.from_store(self.store)
        self.targets, self.targets_note = tuple(config.eval_targets), ""
        if not self.targets and config.preset == "dt":  # a family the DT paper does not list
            self.targets = derive_dt_targets(self.info.return_max)
            self.targets_note = (f"targets {self.targets[0]:g}, {self.targets[1]:g}: derived from the dataset's best "
                                 f"return R as (R, R - |R|/2); the DT paper lists none for this family")
        self.targets = self.targets or self.info.default_targets()
        max_ep_len = config.max_ep_len or self.store.max_episode_steps
        self.sampler = SegmentSampler(self.store, config.context_len, config.batch_size, config.return_scale, max_ep_len,
                                      device=setup.device, seed=config.run.seed, rank=self.ctx.rank,
                                      world_size=self.ctx.world_size, segment_start=config.segment_start)
        self.model = build_model(config, self.info, self.store).to(setup.device)  # the same on every rank
        self.loss = agent_loss(self.sampler, self.ctx)
        if config.eval_video:
            check_video_support()
        self.videos_dir = setup.folder.path / "videos"
        self.total_steps, self.steps_per_epoch, self.samples_per_step = config.steps, None, config.batch_size
        self.last_report: EvalReport | None = None

    def evaluate(self, step: int, final: bool) -> Evaluation:
        episodes = self.config.final_eval_episodes if final else 0
        report = run_evaluation(self.model, self.config, self.info, self.targets, episodes=episodes or None,
                                ctx=self.ctx)
        self.last_report = report
        scalars, videos = eval_scalars(report), []
        if self.config.eval_video and self.ctx.is_main:  # after the unrendered evaluation, which it never slows
            videos, rate = run_videos(self.model, self.config, self.info, self.targets, self.config.eval_video,
                                      self.videos_dir, step)
            scalars["eval/video_env_steps_per_s"] = rate
        return Evaluation(scalars, report.score(0), report.summary(), report.lines()[:-1], videos)

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sampler_state = dict(state["sampler"])
        sampler_state["generator"] = sampler_state["generator"].cpu()
        self.sampler.load_state_dict(sampler_state)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"dataset_info": self.info.to_plain(), "targets": list(self.targets)}

    def check_checkpoint(self, payload: dict[str, Any], path: Path) -> None:
        check_shapes(payload.get("dataset_info", {}), self.store.obs_dim, self.store.act_dim, path)
        try:  # what it says of the dataset must be plain data, its env spec registered code
            DatasetInfo.from_plain(payload["dataset_info"], allow_foreign_code=self.config.allow_foreign_env,
                                   where=f"checkpoint {path}: dataset_info")
        except ValueError as e:
            raise CheckpointError(str(e)) from None

    def describe(self) -> str:
        config, ctx = self.config, self.ctx
        n_params = sum(p.numel() for p in self.model.parameters())
        batch = (f"batch {config.batch_size} per rank x {ctx.world_size} ranks = {config.batch_size * ctx.world_size}"
                 if ctx.enabled else f"batch {config.batch_size}")
        notes = (self.targets_note, recurrent_eval_note(config, self.store.max_episode_steps))
        return (f"{self.store.summary()}\n{describe_backbone(config.backbone)}, {n_params:,} parameters, "
                f"K={config.context_len}, {config.steps} steps x {batch} on {ctx.device}"
                f"{' (rank 0)' if ctx.enabled else ''}; targets {', '.join(f'{t:g}' for t in self.targets)}"
                + "".join(f"\n{note}" for note in notes if note))

    def results(self, final: Evaluation, best: dict[str, Any]) -> dict[str, Any]:
        report, config, info = self.last_report, self.config, self.info
        best_summary = best.get("summary") or {}
        results = {
            "dataset": config.dataset, "env_id": info.env_id, "backbone": config.backbone.name,
            "gradient": config.backbone.gradient, "parameters": sum(p.numel() for p in self.model.parameters()),
            "reference": report.reference, "note": report.note, "dataset_return_mean": info.return_mean,
            "dataset_normalized_mean": info.normalized_mean, "final": report.summary(),
            "final_score": {f"{t.target:g}": report.score(i) for i, t in enumerate(report.targets)},
            "best": best,
            "best_score": {f"{t['target']:g}": t.get("normalized_mean", t["return_mean"])
                           for t in best_summary.get("targets", [])},
        }
        if self.targets_note:
            results["targets_note"] = self.targets_note
        if self.ctx.enabled:
            results["distributed"] = {"batch_size_per_rank": config.batch_size,
                                      "global_batch_size": config.batch_size * self.ctx.world_size}
        return results

    def final_lines(self, final: Evaluation, results: dict[str, Any]) -> list[str]:
        lines = [""] + self.last_report.lines()
        if self.info.normalized_mean is not None:
            lines.append(f"dataset mean normalized return: {self.info.normalized_mean:.1f}")
        return lines


def train_agent(config: AgentConfig, quiet: bool = False) -> dict[str, Any]:
    """Train and evaluate; returns what results.json holds. Raises TrainingDiverged on NaN loss,
    TrainingInterrupted on Ctrl-C, and under torchrun RankStopped when another rank fails."""
    return run_training(config, "agent", lambda setup: AgentTask(config, setup), SCRIPT, quiet=quiet)
