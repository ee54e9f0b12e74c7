"""One agent run, end to end: dataset -> model -> training (logs, checkpoints, resume) -> evaluation -> results.json.

    runs/<name>/config.yaml      the resolved config (`--config` it to re-run)
    runs/<name>/events.*         tensorboard: train/loss, train/lr, train/grad_norm, train/samples_per_s, eval/*
    runs/<name>/metrics.jsonl    the same scalars, one JSON object per log or evaluation
    runs/<name>/checkpoints/     last.pt (atomic, every checkpoint_every steps), best.pt (best score at the first target)
    runs/<name>/results.json     final and best normalized score per target, per-target returns, wall time

Under torchrun (see sequence_models/distributed.py) the same function runs on every rank: DDP,
--batch-size per rank (global batch = batch_size x world size, each rank its slice of one seeded
stream), evaluation episodes split across ranks and gathered; rank 0 alone writes the run folder,
logs and checkpoints, and results.json records the world size and how far the ranks' parameters
drifted apart (0.0: in sync).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from gymnasium.envs.registration import EnvSpec
from tqdm import tqdm

from agents.checkpoints import (
    build_model, check_shapes, dataset_info, finite_parameters, read_agent_checkpoint, reference_of,
)
from agents.config import AgentConfig, describe_backbone, to_plain
from agents.evaluator import EvalReport, evaluate
from agents.trainer import Trainer
from sequence_models.training.rng import seed_everything
from envs.builtin_datasets import BUILTIN_DATASETS, ensure_builtin_dataset
from envs.segment_sampler import SegmentSampler
from envs.trajectory_store import TrajectoryStore
from sequence_models.training import distributed
from sequence_models.training.distributed import Context, RankStopped
from sequence_models.kernels.backend import use_scan_backend
from sequence_models.training.checkpoint import CheckpointError, save_checkpoint
from sequence_models.training.device import pick_device
from sequence_models.training_run import MetricsLog, prepare_run_dir


class TrainingDiverged(RuntimeError):
    """The loss (or a parameter) became NaN or infinite; the message names the last good checkpoint."""


def load_store(config: AgentConfig) -> TrajectoryStore:
    if config.dataset in BUILTIN_DATASETS:
        ensure_builtin_dataset(config.dataset)
    return TrajectoryStore.from_dataset_id(config.dataset, download=config.download)


def default_targets(info: dict[str, Any]) -> tuple[float, ...]:
    """The dataset's best and mean episode returns (high first: best.pt follows the first target).

    Not "half the best": returns may be negative (Reacher), where half the best is a higher target."""
    def tidy(x: float) -> float:
        return float(round(x)) if abs(x) >= 100 else round(x, 1)

    return (tidy(info["return_max"]), tidy(info["return_mean"]))


def fresh_run_dir(config: AgentConfig) -> str:
    """The run name, with -2, -3, ... appended when a run of that name already exists (never overwrite)."""
    base, name, i = config.name, config.name, 1
    while (Path(config.runs_dir) / name / "config.yaml").exists():
        i += 1
        name = f"{base}-{i}"
    return name


MODEL_FIELDS = ("dataset", "backbone", "context_len", "max_ep_len", "state_clip", "return_scale")


def check_same_model(saved: dict[str, Any], config: AgentConfig, path: Path) -> None:
    """Resuming with another model or dataset cannot continue the run: say which flags differ."""
    now = to_plain(config)
    differ = [f"{k}: {saved.get(k)!r} in the checkpoint, {now[k]!r} now" for k in MODEL_FIELDS if saved.get(k) != now[k]]
    if differ:
        raise CheckpointError(
            f"--resume: checkpoint {path} was trained with other settings ({'; '.join(differ)}); resume with "
            f"--config {path.parent.parent / 'config.yaml'} --resume (flags after it may change steps, logging, evaluation)"
        )


def env_spec_of(info: dict[str, Any], dataset: str) -> EnvSpec | str:
    return EnvSpec.from_json(info["env_spec"]) if info.get("env_spec") else dataset


def run_evaluation(model, config: AgentConfig, info: dict[str, Any], targets, mode: str | None = None,
                   episodes: int | None = None, seed: int | None = None, ctx: Context | None = None) -> EvalReport:
    reference, reason = reference_of(info)
    return evaluate(
        model, env_spec_of(info, config.dataset), list(targets), episodes or config.eval_episodes,
        mode=mode or config.eval_mode, context_len=config.context_len, return_scale=config.return_scale,
        seed=config.seed + 10_000 if seed is None else seed, max_steps=config.eval_max_steps,
        vectorization=config.eval_vectorization, reference=reference, no_reference_reason=reason,
        kv_steps=config.eval_kv_steps, ctx=ctx,
    )


def eval_scalars(report: EvalReport) -> dict[str, float]:
    values = {"eval/env_steps_per_s": report.env_steps_per_s}
    for t in report.targets:
        values[f"eval/return@{t.target:g}"] = t.return_mean
        if t.normalized is not None:
            values[f"eval/normalized@{t.target:g}"] = float(sum(t.normalized) / len(t.normalized))
    return values


class _NoMetrics:
    def log(self, step: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def train_agent(config: AgentConfig, quiet: bool = False) -> dict[str, Any]:
    """Train and evaluate; returns what results.json holds. Raises TrainingDiverged on NaN loss, and
    under torchrun RankStopped when another rank fails."""
    ctx = distributed.setup(pick_device(config.device), config.dist_timeout_s)
    try:
        return _train_agent(config, ctx, quiet)
    finally:
        distributed.cleanup(ctx)


def _train_agent(config: AgentConfig, ctx: Context, quiet: bool) -> dict[str, Any]:
    say = (lambda *a: None) if quiet or not ctx.is_main else print
    t_start = time.time()
    device = ctx.device
    if device.type == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    use_scan_backend(config.scan_backend, device)  # an impossible choice (triton on CPU) stops here
    seed_everything(config.seed)

    if not ctx.is_main:  # rank 0 makes a built-in dataset first; the others then read it
        distributed.barrier(ctx)
    store = load_store(config)
    if ctx.is_main:
        distributed.barrier(ctx)
    info = dataset_info(store)
    targets = tuple(config.eval_targets) or default_targets(info)
    name = config.name if config.resume else distributed.broadcast_object(ctx, fresh_run_dir(config) if ctx.is_main else None)
    run_dir = Path(config.runs_dir) / name
    last, best = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"

    resume_payload = None
    if config.resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {last}; run without --resume to start {name}")
        resume_payload = read_agent_checkpoint(last, device)
        check_shapes(resume_payload["dataset_info"], store.obs_dim, store.act_dim, last)
        check_same_model(resume_payload["config"], config, last)
    plain = to_plain(config)
    plain["run_name"] = name
    if ctx.is_main:
        prepare_run_dir(config.runs_dir, name, {"command": " ".join(sys.argv), "config": plain})

    max_ep_len = config.max_ep_len or store.max_episode_steps
    sampler = SegmentSampler(store, config.context_len, config.batch_size, config.return_scale, max_ep_len,
                             device=device, seed=config.seed, rank=ctx.rank, world_size=ctx.world_size,
                             segment_start=config.segment_start)
    model = build_model(config, info, store).to(device)  # the same on every rank (and DDP broadcasts rank 0's)
    if ctx.rank > 0:
        seed_everything(config.seed + ctx.rank)  # dropout differs across ranks; rank 0 keeps the single-process stream
    trainer = Trainer(model, sampler, config, device, ctx)
    best_score, best_step, best_summary = -math.inf, None, None
    if resume_payload is not None:
        trainer.load_state_dict(resume_payload["trainer"])
        best_score = resume_payload.get("best_score", -math.inf)
        best_step, best_summary = resume_payload.get("best_step"), resume_payload.get("best_summary")
        say(f"resumed {name} at step {trainer.step} from {last}")

    n_params = sum(p.numel() for p in model.parameters())
    say(store.summary())
    batch = (f"batch {config.batch_size} per rank x {ctx.world_size} ranks = {config.batch_size * ctx.world_size}"
             if ctx.enabled else f"batch {config.batch_size}")
    say(f"{name}: {describe_backbone(config.backbone)}, {n_params:,} parameters, K={config.context_len}, "
        f"{config.steps} steps x {batch} on {device}{' (rank 0)' if ctx.enabled else ''}; "
        f"targets {', '.join(f'{t:g}' for t in targets)}")

    def payload() -> dict[str, Any]:
        return {"trainer": trainer.state_dict(), "model": model.state_dict(),
                "config": plain, "dataset_info": info, "targets": list(targets), "best_score": best_score,
                "best_step": best_step, "best_summary": best_summary}

    last_good = f"{last} (step {resume_payload['trainer']['step']})" if resume_payload else "none written yet"
    metrics = MetricsLog(run_dir) if ctx.is_main else _NoMetrics()
    progress = tqdm(total=config.steps, initial=trainer.step, desc=name,
                    disable=quiet or not config.progress or not ctx.is_main, mininterval=2, dynamic_ncols=True)
    train_seconds, final_report = 0.0, None

    def save(path: Path) -> None:
        state = payload()  # on every rank: it gathers every rank's RNG state
        if ctx.is_main:
            save_checkpoint(path, state)

    try:
        t_train = time.perf_counter()
        while trainer.step < config.steps:
            trainer.train_step()
            progress.update(1)
            step = trainer.step
            finishing = step == config.steps
            evaluating = finishing or (config.eval_every and step % config.eval_every == 0)
            checkpointing = finishing or step % config.checkpoint_every == 0
            if step % config.log_every == 0 or evaluating or checkpointing:
                values = trainer.read_metrics()
                if not math.isfinite(values["train/loss"]) or (checkpointing and not finite_parameters(model)):
                    raise TrainingDiverged(
                        f"training diverged: the loss is {values['train/loss']} at step {step} "
                        f"(mean over the steps since the last log); stopped. Last good checkpoint: {last_good}. "
                        "Try a lower --lr, a smaller --grad-clip or --no-amp."
                    )
                metrics.log(step, values)
                progress.set_postfix(loss=f"{values['train/loss']:.4f}", refresh=False)
            if evaluating:
                train_seconds += time.perf_counter() - t_train
                report = run_evaluation(model, config, info, targets, ctx=ctx)
                final_report = report if finishing else None
                metrics.log(step, eval_scalars(report))
                if report.score(0) > best_score:
                    best_score, best_step, best_summary = report.score(0), step, report.summary()
                    save(best)
                if not finishing:
                    progress.write(f"step {step}: " + "; ".join(report.lines()[:-1]))
                t_train = time.perf_counter()
                trainer.restart_clock()
            if checkpointing:
                save(last)
                last_good = f"{last} (step {step})"
        train_seconds += time.perf_counter() - t_train
        if final_report is None:  # resumed a run that had already finished
            final_report = run_evaluation(model, config, info, targets, ctx=ctx)
        divergence = distributed.max_parameter_divergence(ctx, model)
    except TrainingDiverged:
        raise
    except Exception as e:
        if not ctx.enabled:
            raise
        raise RankStopped(distributed.stopped_message(ctx, e, f"at step {trainer.step}", last_good)) from e
    finally:
        progress.close()
        metrics.close()

    results = {
        "run": name,
        "run_dir": str(run_dir),
        "dataset": config.dataset,
        "env_id": info["env_id"],
        "backbone": config.backbone.name,
        "gradient": config.backbone.gradient,
        "parameters": n_params,
        "steps": trainer.step,
        "reference": final_report.reference,
        "note": final_report.note,
        "dataset_return_mean": info["return_mean"],
        "dataset_normalized_mean": info.get("normalized_mean"),
        "final": final_report.summary(),
        "final_score": {f"{t.target:g}": final_report.score(i) for i, t in enumerate(final_report.targets)},
        "best": {"step": best_step, "score": best_score, "summary": best_summary},
        "best_score": {f"{t['target']:g}": t.get("normalized_mean", t["return_mean"]) for t in (best_summary or {}).get("targets", [])},
        "train_seconds": train_seconds,
        "wall_time_s": time.time() - t_start,
    }
    if ctx.enabled:
        results["distributed"] = {"world_size": ctx.world_size, "batch_size_per_rank": config.batch_size,
                                  "global_batch_size": config.batch_size * ctx.world_size,
                                  "max_parameter_divergence": divergence}
    if ctx.is_main:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2))

    unit = "normalized" if final_report.reference else "return"
    say("\n" + "\n".join(final_report.lines()))
    if info.get("normalized_mean") is not None:
        say(f"dataset mean normalized return: {info['normalized_mean']:.1f}")
    say(f"\nrun folder:   {run_dir}  (config.yaml, metrics.jsonl, checkpoints/, results.json)")
    say(f"results:      {run_dir / 'results.json'}  (final {unit} at {targets[0]:g}: {final_report.score(0):.1f}; "
        f"wall time {results['wall_time_s']:.0f} s)")
    say(f"tensorboard:  tensorboard --logdir {config.runs_dir}")
    return results
