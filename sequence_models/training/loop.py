"""The loop every task runs (agent, language model, copying), and what a task provides to it.

    run_training(config, "lm", build_task, script="scripts/train_lm.py")

does, for every task alike:
1. set up: torchrun's process group (a no-op without torchrun), CPU threads, scan backend, seeds;
   a fresh run folder (NAME, NAME-2, ...; atomic) or, with --resume, the named one; its lock;
2. `build_task(setup)`: the task makes its data, model and evaluation (`Task` below);
3. resume: the checkpoint's config must match this one except for the fields the task lists as
   changeable on resume (and the run's own: logging, cadence, device, ...); the model, optimizer,
   schedule, data position, carried state and every RNG come back, so N steps + resume + N steps
   equals 2N steps;
4. the loop: step; log (NaN/Inf stops the run naming the last good checkpoint, which is never
   overwritten by a bad one); evaluate (best.pt follows the score); checkpoint; last.pt is written
   before the final evaluation, and results.json records the error if that evaluation fails;
   Ctrl-C writes last.pt and prints the command that resumes;
5. results.json: the task's results plus steps, train seconds and wall time.

Under torchrun every rank runs the same code; rank 0 alone writes the folder; a rank whose peers
fail raises RankStopped naming the last valid checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

import torch
from torch import nn
from tqdm import tqdm

from ..kernels.backend import use_scan_backend
from . import distributed
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, RunConfig, config_document, to_plain
from .device import pick_device
from .distributed import Context, RankStopped
from .rng import seed_everything
from .run_folder import MetricsLog, NoMetrics, RunFolder, Video, claim_fresh
from .trainer import LossFunction, Trainer, finite_parameters

RESUMABLE_RUN_FIELDS = ("run_name", "runs_dir", "device", "cpu_threads", "compile", "scan_backend", "resume",
                        "log_every", "checkpoint_every", "eval_every", "progress", "dist_timeout_s",
                        "wandb", "wandb_project", "wandb_entity", "wandb_group", "wandb_tags")
"""RunConfig fields a resumed run may change: where and how fast it runs, not what it computes."""


class TrainingDiverged(RuntimeError):
    """The loss (or a parameter) became NaN or infinite; the message names the last good checkpoint."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C: last.pt was written (or kept); the message is the command that resumes."""


@dataclass
class Evaluation:
    scalars: dict[str, float]
    """logged to metrics.jsonl / tensorboard"""
    score: float
    """higher is better: best.pt follows it"""
    summary: dict[str, Any] = field(default_factory=dict)
    """plain data kept as the best (and final) evaluation"""
    lines: list[str] = field(default_factory=list)
    """printed after an intermediate evaluation"""
    videos: list[Video] = field(default_factory=list)
    """rendered episodes the task wrote (agent --eval-video): to tensorboard / wandb"""


class Task(Protocol):
    """What a task gives the loop. `model` is on the device; `loss(net)` draws the next batch."""

    model: nn.Module
    loss: LossFunction
    total_steps: int
    steps_per_epoch: int | None
    samples_per_step: int
    resumable_fields: ClassVar[tuple[str, ...]]

    def evaluate(self, final: bool) -> Evaluation: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def checkpoint_extras(self) -> dict[str, Any]: ...
    def check_checkpoint(self, payload: dict[str, Any], path: Path) -> None: ...
    def describe(self) -> str: ...
    def results(self, final: Evaluation, best: dict[str, Any]) -> dict[str, Any]: ...
    def final_lines(self, final: Evaluation, results: dict[str, Any]) -> list[str]: ...


@dataclass
class Setup:
    """What the loop decided before the task is built."""

    config: Any
    run: RunConfig
    ctx: Context
    folder: RunFolder
    resume_payload: dict[str, Any] | None
    say: Callable[..., None]
    quiet: bool

    @property
    def device(self) -> torch.device:
        return self.ctx.device


def flat_fields(plain: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"run": {"seed": 0}} -> {"seed": 0}; the backbone stays one value (it is compared whole)."""
    out = {}
    for key, value in plain.items():
        if isinstance(value, dict) and key != "backbone":
            out.update(flat_fields(value))
        else:
            out[key] = value
    return out


def check_resumable(saved: dict[str, Any], now: dict[str, Any], resumable: tuple[str, ...], path: Path,
                    config_yaml: Path, done_steps: int, total_steps: int) -> None:
    """Stop when a setting that decides the result differs from the checkpoint's (naming each)."""
    saved, now = flat_fields(saved), flat_fields(now)
    changeable = set(RESUMABLE_RUN_FIELDS) | set(resumable) | {"preset"}
    differ = [f"{k}: {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now"
              for k in sorted(set(saved) | set(now)) if k not in changeable and saved.get(k) != now.get(k)]
    if differ:
        raise CheckpointError(
            f"--resume: checkpoint {path} was trained with other settings ({'; '.join(differ)}); a resumed run "
            f"may change only {', '.join(sorted(set(resumable)))} and how it runs. Resume with --config {config_yaml} "
            "--resume, or start a new run (another --run-name)")
    if total_steps < done_steps:
        raise CheckpointError(f"--resume: checkpoint {path} is at step {done_steps}, past the {total_steps} steps "
                              "asked for; ask for at least as many steps")


def _setup(config: Any, task_name: str, ctx: Context, quiet: bool) -> Setup:
    run: RunConfig = config.run
    say = (lambda *a, **k: None) if quiet or not ctx.is_main else print
    if ctx.device.type == "cpu" and run.cpu_threads:
        torch.set_num_threads(run.cpu_threads)
    use_scan_backend(run.scan_backend, ctx.device)  # an impossible choice (triton on CPU) stops here
    seed_everything(run.seed)
    name = run.run_name or config.default_run_name()
    if run.resume:
        folder = RunFolder(Path(run.runs_dir) / name)
        if not folder.last.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {folder.last}; run without --resume to start {name}")
    else:
        path = claim_fresh(run.runs_dir, name) if ctx.is_main else None
        folder = RunFolder(distributed.broadcast_object(ctx, str(path) if path else None))
    if ctx.is_main:
        folder.lock()
    payload = load_checkpoint(folder.last, map_location=ctx.device) if run.resume else None
    return Setup(config, run, ctx, folder, payload, say, quiet)


def run_training(config: Any, task_name: str, build_task: Callable[[Setup], Task], script: str,
                 quiet: bool = False) -> dict[str, Any]:
    """Train and evaluate one task (see the module doc); returns what results.json holds."""
    ctx = distributed.setup(pick_device(config.run.device), config.run.dist_timeout_s)
    setup = None
    try:
        setup = _setup(config, task_name, ctx, quiet)
        return _run(setup, task_name, build_task, script)
    except (TrainingDiverged, TrainingInterrupted, RankStopped, ConfigError):
        raise
    except Exception as e:
        if not ctx.enabled:
            raise
        last = setup.folder.last if setup else "none"
        raise RankStopped(distributed.stopped_message(ctx, e, "", f"{last} (if it exists)")) from e
    finally:
        if setup is not None:
            setup.folder.unlock()
        distributed.cleanup(ctx)


def _run(setup: Setup, task_name: str, build_task: Callable[[Setup], Task], script: str) -> dict[str, Any]:
    t_start = time.time()
    config, run, ctx, folder, say = setup.config, setup.run, setup.ctx, setup.folder, setup.say
    if not ctx.is_main:  # rank 0 builds shared files (a built-in dataset, a download) first
        distributed.barrier(ctx)
    task = build_task(setup)
    if ctx.is_main:
        distributed.barrier(ctx)
    if ctx.rank > 0:
        seed_everything(run.seed + ctx.rank)  # dropout differs across ranks; rank 0 keeps the single-process stream
    # what config.yaml and the checkpoints record: the folder's name, and a fresh start (--config FILE
    # re-runs it; --config FILE --resume continues it)
    plain = to_plain(dataclasses.replace(config, run=dataclasses.replace(run, run_name=folder.name, resume=False)))
    trainer = Trainer(task.model, task.loss, config.optim, task.total_steps, ctx.device, ctx, amp=run.amp,
                      compile=run.compile, samples_per_step=task.samples_per_step,
                      steps_per_epoch=task.steps_per_epoch, seed=run.seed)
    best: dict[str, Any] = {"score": -math.inf, "step": None, "summary": None}
    resume_step = 0
    if setup.resume_payload is not None:
        payload = setup.resume_payload
        for key in ("model", "trainer", "task", "config"):
            if key not in payload:
                raise CheckpointError(f"checkpoint {folder.last} is not a {task_name} checkpoint (no {key!r})")
        task.check_checkpoint(payload, folder.last)
        check_resumable(payload["config"], plain, task.resumable_fields, folder.last, folder.path / "config.yaml",
                        int(payload["step"]), task.total_steps)
        task.model.load_state_dict(payload["model"])
        trainer.load_state_dict(payload["trainer"])
        task.load_state_dict(payload["task"])
        best = dict(payload["best"])
        resume_step = trainer.step
        say(f"resumed {folder.name} at step {trainer.step} from {folder.last}")
    if ctx.is_main:
        folder.write_config(config_document(task_name, plain, " ".join(sys.argv)))

    say(task.describe())
    metrics = MetricsLog(folder.path, resume_step, run=run, config=plain) if ctx.is_main else NoMetrics()
    progress = tqdm(total=task.total_steps, initial=trainer.step, desc=folder.name,
                    disable=setup.quiet or not run.progress or not ctx.is_main, mininterval=2, dynamic_ncols=True)
    eval_every = run.eval_every or task.steps_per_epoch or 0
    last_good = f"{folder.last} (step {resume_step})" if resume_step else "none written yet"
    saved_step = resume_step if setup.resume_payload is not None else -1
    train_seconds, final = 0.0, None

    def save(path: Path) -> None:
        state = {"step": trainer.step, "model": task.model.state_dict(), "trainer": trainer.state_dict(),
                 "task": task.state_dict(), "config": plain, "best": best, **task.checkpoint_extras()}
        if ctx.is_main:  # trainer.state_dict() is a collective: every rank builds the payload
            save_checkpoint(path, state)

    def save_last() -> None:
        nonlocal last_good, saved_step
        save(folder.last)
        last_good, saved_step = f"{folder.last} (step {trainer.step})", trainer.step

    def diverged(what: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"training diverged: {what} at step {trainer.step}; stopped. Last good checkpoint: {last_good}. "
            "Try a lower --lr, a smaller --grad-clip or --no-amp.")

    try:
        t_train = time.perf_counter()
        while trainer.step < task.total_steps:
            trainer.train_step()
            progress.update(1)
            step = trainer.step
            finishing = step == task.total_steps
            evaluating = finishing or (eval_every and step % eval_every == 0)
            checkpointing = finishing or step % run.checkpoint_every == 0
            if step % run.log_every == 0 or evaluating or checkpointing:
                values = trainer.read_metrics()
                if not math.isfinite(values["train/loss"]):
                    raise diverged(f"the loss is {values['train/loss']} (mean over the steps since the last log)")
                if (checkpointing or evaluating) and not finite_parameters(task.model):
                    raise diverged("a parameter is not finite")
                metrics.log(step, values)
                progress.set_postfix(loss=f"{values['train/loss']:.4f}", refresh=False)
            if finishing:
                save_last()  # the trained model is safe before the final evaluation runs
            if evaluating:
                train_seconds += time.perf_counter() - t_train
                evaluation = _evaluate(task, folder, ctx, finishing, step)
                metrics.log(step, evaluation.scalars)
                metrics.log_videos(step, evaluation.videos)
                if evaluation.score > best["score"]:
                    best = {"score": evaluation.score, "step": step, "summary": evaluation.summary}
                    save(folder.best)
                if finishing:
                    final = evaluation
                    save_last()  # with the final best
                else:
                    progress.write(f"step {step}: " + "; ".join(evaluation.lines))
                t_train = time.perf_counter()
                trainer.restart_clock()
            if checkpointing and not finishing:
                save_last()
        train_seconds += time.perf_counter() - t_train
        if final is None:  # resumed a run that had already finished
            final = _evaluate(task, folder, ctx, True, trainer.step)
        divergence = distributed.max_parameter_divergence(ctx, task.model)
    except (TrainingDiverged, RankStopped):
        raise
    except Exception as e:
        if not ctx.enabled:
            raise
        raise RankStopped(distributed.stopped_message(ctx, e, f"at step {trainer.step}", last_good)) from e
    except KeyboardInterrupt:
        progress.close()
        if trainer.step != saved_step and finite_parameters(task.model):
            save_last()
        raise TrainingInterrupted(
            f"interrupted at step {trainer.step}; {last_good}. Resume with: python {script} "
            f"--config {folder.path / 'config.yaml'} --resume") from None
    finally:
        progress.close()
        metrics.close()

    results = {"task": task_name, "run": folder.name, "run_dir": str(folder.path), **task.results(final, best),
               "steps": trainer.step, "train_seconds": train_seconds, "wall_time_s": time.time() - t_start}
    if ctx.enabled:
        results.setdefault("distributed", {}).update(world_size=ctx.world_size, max_parameter_divergence=divergence)
    if ctx.is_main:
        folder.write_json("results.json", results)
    for line in task.final_lines(final, results):
        say(line)
    say(f"\nrun folder:   {folder.path}  (config.yaml, metrics.jsonl, checkpoints/, results.json)")
    say(f"tensorboard:  tensorboard --logdir {run.runs_dir}")
    return results


def _evaluate(task: Task, folder: RunFolder, ctx: Context, final: bool, step: int) -> Evaluation:
    """task.evaluate; a failing final evaluation leaves results.json with the error (last.pt is written)."""
    try:
        return task.evaluate(final)
    except Exception as e:
        if final and ctx.is_main:
            folder.write_json("results.json", {"run": folder.name, "step": step, "error": f"{type(e).__name__}: {e}",
                                               "checkpoint": str(folder.last)})
        raise
