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
from .config import ConfigError, RunConfig, config_document, flat_fields, to_plain
from .device import pick_device
from .distributed import Context, RankStopped
from .errors import TrainingDiverged, TrainingInterrupted
from .provenance import code_version
from .rng import seed_everything
from .run_folder import MetricsLog, NoMetrics, RunFolder, Video, claim_fresh
from .trainer import LossFunction, Trainer, finite_parameters

RESUMABLE_RUN_FIELDS = ("run_name", "runs_dir", "device", "cpu_threads", "compile", "scan_backend", "resume",
                        "log_every", "checkpoint_every", "eval_every", "progress", "dist_timeout_s",
                        "wandb", "wandb_project", "wandb_entity", "wandb_group", "wandb_tags")
"""RunConfig fields a resumed run may change: where and how fast it runs, not what it computes."""


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

    def evaluate(self, step: int, final: bool) -> Evaluation: ...
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


def _setup(config: Any, ctx: Context, quiet: bool) -> Setup:
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
        setup = _setup(config, ctx, quiet)
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
    config, run, ctx, folder = setup.config, setup.run, setup.ctx, setup.folder
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
    loop = _Loop(setup, task, trainer, plain, script)
    if setup.resume_payload is not None:
        loop.restore(setup.resume_payload, task_name)
    if ctx.is_main:
        folder.write_config(config_document(task_name, plain, " ".join(sys.argv)))
    setup.say(task.describe())
    final, train_seconds = loop.train()
    divergence = distributed.max_parameter_divergence(ctx, task.model)

    results = {"task": task_name, "run": folder.name, "run_dir": str(folder.path), **task.results(final, loop.best),
               "steps": trainer.step, "train_seconds": train_seconds, "wall_time_s": time.time() - t_start,
               "code": code_version()}
    if ctx.enabled:
        results.setdefault("distributed", {}).update(world_size=ctx.world_size, max_parameter_divergence=divergence)
    if ctx.is_main:
        folder.write_json("results.json", results)
    for line in task.final_lines(final, results):
        setup.say(line)
    setup.say(f"\nrun folder:   {folder.path}  (config.yaml, metrics.jsonl, checkpoints/, results.json)")
    setup.say(f"results:      {folder.path / 'results.json'}  (wall time {results['wall_time_s']:.0f} s)")
    setup.say(f"tensorboard:  tensorboard --logdir {run.runs_dir}")
    return results


class _Loop:
    """One run's steps, logs, evaluations and checkpoints (the module doc's step 4)."""

    def __init__(self, setup: Setup, task: Task, trainer: Trainer, plain: dict[str, Any], script: str):
        self.setup, self.task, self.trainer, self.plain, self.script = setup, task, trainer, plain, script
        self.folder, self.ctx, self.run = setup.folder, setup.ctx, setup.run
        self.best: dict[str, Any] = {"score": -math.inf, "step": None, "summary": None}
        self.resume_step, self.saved_step = 0, -1
        self.last_good = "none written yet"

    def restore(self, payload: dict[str, Any], task_name: str) -> None:
        """Continue from a checkpoint: the settings must allow it, then every piece of state comes back."""
        folder, task = self.folder, self.task
        for key in ("model", "trainer", "task", "config"):
            if key not in payload:
                raise CheckpointError(f"checkpoint {folder.last} is not a {task_name} checkpoint (no {key!r})")
        task.check_checkpoint(payload, folder.last)
        check_resumable(payload["config"], self.plain, task.resumable_fields, folder.last, folder.path / "config.yaml",
                        int(payload["step"]), task.total_steps)
        task.model.load_state_dict(payload["model"])
        self.trainer.load_state_dict(payload["trainer"])
        task.load_state_dict(payload["task"])
        self.best = dict(payload["best"])
        self.resume_step = self.saved_step = self.trainer.step
        self.last_good = f"{folder.last} (step {self.trainer.step})"
        self.setup.say(f"resumed {folder.name} at step {self.trainer.step} from {folder.last}")

    def save(self, path: Path) -> None:
        state = {"step": self.trainer.step, "model": self.task.model.state_dict(), "trainer": self.trainer.state_dict(),
                 "task": self.task.state_dict(), "config": self.plain, "best": self.best,
                 **self.task.checkpoint_extras()}
        if self.ctx.is_main:  # trainer.state_dict() is a collective: every rank builds the payload
            save_checkpoint(path, state)

    def save_last(self) -> None:
        self.save(self.folder.last)
        self.last_good, self.saved_step = f"{self.folder.last} (step {self.trainer.step})", self.trainer.step

    def diverged(self, what: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"training diverged: {what} at step {self.trainer.step}; stopped. Last good checkpoint: {self.last_good}. "
            "Try a lower --lr, a smaller --grad-clip or --no-amp.")

    def log_training(self, metrics, progress, check_parameters: bool) -> None:
        """Log the means since the last log; the NaN guard."""
        values = self.trainer.read_metrics()
        if not math.isfinite(values["train/loss"]):
            raise self.diverged(f"the loss is {values['train/loss']} (mean over the steps since the last log)")
        if check_parameters and not finite_parameters(self.task.model):
            raise self.diverged("a parameter is not finite")
        metrics.log(self.trainer.step, values)
        progress.set_postfix(loss=f"{values['train/loss']:.4f}", refresh=False)

    def evaluate(self, metrics, final: bool) -> Evaluation:
        """task.evaluate, logged; best.pt when it beats the best so far. A failing final evaluation leaves
        results.json with the error (last.pt is written before it)."""
        step = self.trainer.step
        try:
            evaluation = self.task.evaluate(step, final)
        except Exception as e:
            if final and self.ctx.is_main:
                self.folder.write_json("results.json", {"run": self.folder.name, "step": step,
                                                        "checkpoint": str(self.folder.last),
                                                        "error": f"{type(e).__name__}: {e}"})
            raise
        metrics.log(step, evaluation.scalars)
        metrics.log_videos(step, evaluation.videos)
        if evaluation.score > self.best["score"]:
            self.best = {"score": evaluation.score, "step": step, "summary": evaluation.summary}
            self.save(self.folder.best)
        return evaluation

    def train(self) -> tuple[Evaluation, float]:
        """Train to the task's last step; (the final evaluation, seconds spent training)."""
        run, task, trainer, ctx = self.run, self.task, self.trainer, self.ctx
        metrics = (MetricsLog(self.folder.path, self.resume_step, run=run, config=self.plain) if ctx.is_main
                   else NoMetrics())
        progress = tqdm(total=task.total_steps, initial=trainer.step, desc=self.folder.name, mininterval=2,
                        disable=self.setup.quiet or not run.progress or not ctx.is_main, dynamic_ncols=True)
        eval_every = run.eval_every or task.steps_per_epoch or 0
        train_seconds, final = 0.0, None
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
                    self.log_training(metrics, progress, check_parameters=checkpointing or evaluating)
                if finishing:
                    self.save_last()  # the trained model is safe before the final evaluation runs
                if evaluating:
                    train_seconds += time.perf_counter() - t_train
                    evaluation = self.evaluate(metrics, final=finishing)
                    if finishing:
                        final = evaluation
                        self.save_last()  # with the final best
                    else:
                        progress.write(f"step {step}: " + "; ".join(evaluation.lines))
                    t_train = time.perf_counter()
                    trainer.restart_clock()
                if checkpointing and not finishing:
                    self.save_last()
            train_seconds += time.perf_counter() - t_train
            if final is None:  # resumed a run that had already finished
                final = self.evaluate(metrics, final=True)
        except (TrainingDiverged, RankStopped):
            raise
        except Exception as e:
            if not ctx.enabled:
                raise
            raise RankStopped(distributed.stopped_message(ctx, e, f"at step {trainer.step}", self.last_good)) from e
        except KeyboardInterrupt:
            progress.close()
            if trainer.step != self.saved_step and finite_parameters(task.model):
                self.save_last()
            raise TrainingInterrupted(
                f"interrupted at step {trainer.step}; last checkpoint: {self.last_good}. Resume with: python "
                f"{self.script} --config {self.folder.path / 'config.yaml'} --resume") from None
        finally:
            progress.close()
            metrics.close()
        return final, train_seconds
