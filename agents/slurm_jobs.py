"""SLURM for a sweep (db-sweep --launcher slurm), through submitit (pip install -e '.[slurm]'):
one job per run, each the same train_agent command the local launcher runs, in the same run
folders, with the same skip / resume rules, and the same report at the end.

Preemption and time limits. submitit signals the job before SLURM kills it (SIGUSR2, or at the
time limit); TrainJob.checkpoint then sends the run Ctrl-C, which writes checkpoints/last.pt and
exits, and requeues itself: the requeued job finds last.pt and continues with --resume, exactly
(data order, optimizer, RNGs). A job killed without warning loses at most --checkpoint-every
steps: running the sweep command again resumes it from last.pt, like every unfinished run.

`--launcher submitit-local` runs the same jobs on this machine through submitit's LocalExecutor:
to try a sweep's SLURM path (and in the tests) without a cluster.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import submitit

from agents.sweep import REPO, Outcome, PlannedRun, command, run_state, subprocess_env


@dataclass(frozen=True)
class SlurmOptions:
    partition: str = ""
    gpus_per_run: int = 0
    cpus_per_run: int = 2
    time_min: int = 240
    mem_gb: float = 0.0


class TrainJob(submitit.helpers.Checkpointable):
    """One run as a submitit job: its train_agent process, interrupted (last.pt) and requeued on preemption."""

    def __init__(self, run: PlannedRun, out: Path, threads: int, device: str | None):
        self.run, self.out, self.threads, self.device = run, out, threads, device
        self.process: subprocess.Popen | None = None

    def __call__(self) -> int:
        state = run_state(self.run, self.out)
        if state == "finished":
            return 0
        if state == "stale":
            shutil.rmtree(self.out / self.run.name)
        argv = command(self.run, self.out, self.threads, self.device, state == "resumable")
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.out / "logs" / f"{self.run.name}.log", "a") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(self.threads),
                                            cwd=REPO)
            return self.process.wait()

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on preemption / timeout: Ctrl-C the run (it writes last.pt), then requeue."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return submitit.helpers.DelayedSubmission(TrainJob(self.run, self.out, self.threads, self.device))


def make_executor(launcher: str, folder: Path, options: SlurmOptions) -> submitit.Executor:
    """slurm: sbatch through submitit; submitit-local: the same jobs as local processes."""
    executor = submitit.AutoExecutor(folder=folder, cluster="local" if launcher == "submitit-local" else "slurm")
    parameters = dict(timeout_min=options.time_min, cpus_per_task=options.cpus_per_run, name="db-sweep")
    if launcher == "slurm":
        parameters.update(gpus_per_node=options.gpus_per_run, slurm_signal_delay_s=120)
        if options.partition:
            parameters["slurm_partition"] = options.partition
        if options.mem_gb:
            parameters["mem_gb"] = options.mem_gb
    executor.update_parameters(**parameters)
    return executor


def launch_jobs(runs: list[PlannedRun], out: Path, launcher: str, options: SlurmOptions,
                on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Submit one job per run (all at once: SLURM queues them), wait for each, report as they end."""
    executor = make_executor(launcher, out / "slurm", options)
    t0 = time.time()
    jobs = {}
    for run in runs:
        executor.update_parameters(name=run.name)
        jobs[executor.submit(TrainJob(run, out, options.cpus_per_run, None))] = run
    print(f"submitted {len(jobs)} job(s) ({launcher}): {', '.join(j.job_id for j in jobs)}; logs in {out / 'logs'}, "
          f"submitit's in {out / 'slurm'}", flush=True)
    outcomes = []
    poll_s = 1 if launcher == "submitit-local" else 30  # SLURM: each poll is an sacct call
    for job in submitit.helpers.as_completed(list(jobs), poll_frequency=poll_s):
        run = jobs[job]
        try:
            code = int(job.result())
        except Exception as e:  # noqa: BLE001 - a failed job (killed, node failure) is a failed run, named
            code = 1
            with open(out / "logs" / f"{run.name}.log", "a") as log:
                log.write(f"\njob {job.job_id} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n")
        outcome = Outcome(run, code, time.time() - t0, out / "logs" / f"{run.name}.log")
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    return outcomes
