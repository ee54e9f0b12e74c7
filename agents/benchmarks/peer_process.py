"""The peers suite's side of the peer: its virtual environment, the episodes handed to it, its subprocess.

d3rlpy 2.8.1 pins gymnasium==1.0.0, so it never enters the project's environment: it lives in a
virtual environment of its own (default ~/.cache/decision-backbones/peers-venv, made by
`--make-peer-env`, or any python given by `--peer-python`), and agents/benchmarks/peer_d3rlpy.py
runs there as a subprocess. It gets the dataset as aligned arrays written by `write_peer_episodes`
(our loader's observations[:-1] per episode), not through d3rlpy's `get_minari`, which misaligns
every episode after the first (README, "Peers").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from agents.benchmarks.peer_d3rlpy import RESULT_PREFIX
from envs.minari_loading import EpisodeArrays

PEER_SCRIPT = Path(__file__).with_name("peer_d3rlpy.py")
PEER_PACKAGES = ("d3rlpy==2.8.1", "gymnasium[mujoco]==1.0.0")


class PeerError(RuntimeError):
    """The peer could not be made or run; the message is one line."""


def venv_python(venv: Path) -> Path:
    return Path(venv).expanduser() / "bin" / "python"


def peer_install_commands(venv: Path) -> list[list[str]]:
    """python -m venv, then our torch release (so pip keeps a matching build, the local CPU one where
    pip's configuration offers it), then d3rlpy and its gymnasium with MuJoCo."""
    import torch

    python = str(venv_python(venv))
    return [[sys.executable, "-m", "venv", str(Path(venv).expanduser())],
            [python, "-m", "pip", "install", f"torch=={torch.__version__.split('+')[0]}"],
            [python, "-m", "pip", "install", *PEER_PACKAGES]]


def how_to_make_peer_env(venv: Path) -> str:
    return (f"peers suite: no d3rlpy environment at {venv}; running our rows only. Make it with "
            f"`db-benchmark --suite peers --make-peer-env` (a venv there with {' '.join(PEER_PACKAGES)} and torch), "
            "or pass --peer-python PATH (a python that has d3rlpy 2.8.1)")


def make_peer_env(venv: Path) -> Path:
    """Create the peer's virtual environment (network, minutes); returns its python."""
    for command in peer_install_commands(venv):
        print("peers suite: " + " ".join(command), flush=True)
        code = subprocess.call(command)
        if code != 0:
            raise PeerError(f"making the peer environment failed (exit {code}) at `{' '.join(command)}`; see the "
                            f"output above, fix it, remove {venv} and run again")
    return venv_python(venv)


def find_peer_python(peer_python: Path | None, venv: Path, make: bool) -> Path | None:
    """The peer's python: --peer-python, else the venv's (made first with --make-peer-env), else None."""
    if peer_python is not None:
        if not Path(peer_python).expanduser().is_file():
            raise ValueError(f"--peer-python {peer_python} is not a file; pass the python of an environment with d3rlpy 2.8.1")
        return Path(peer_python).expanduser()
    python = venv_python(venv)
    if python.is_file():
        return python
    return make_peer_env(venv) if make else None


def write_peer_episodes(episodes: EpisodeArrays, path: Path) -> Path:
    """The dataset as d3rlpy's MDPDataset takes it: rows already aligned (observations[i] is the state
    actions[i] was taken in); every episode's last row flagged, terminal or else timeout, so d3rlpy
    splits the episodes where ours end."""
    last = np.zeros(len(episodes.actions), dtype=bool)
    last[episodes.episode_starts[1:] - 1] = True
    terminals = episodes.terminations.astype(bool)
    timeouts = (episodes.truncations.astype(bool) | last) & ~terminals
    np.savez(path, observations=episodes.observations.astype(np.float32), actions=episodes.actions.astype(np.float32),
             rewards=episodes.rewards.astype(np.float32), terminals=terminals.astype(np.float32),
             timeouts=timeouts.astype(np.float32))
    return Path(path)


def peer_command(python: Path, episodes_path: Path, settings: dict) -> list[str]:
    """The subprocess: settings' keys are peer_d3rlpy.py's flags (train_steps -> --train-steps)."""
    flags = [part for key, value in settings.items() for part in (f"--{key.replace('_', '-')}", str(value))]
    return [str(python), str(PEER_SCRIPT), "--episodes", str(episodes_path), *flags]


def parse_peer_output(stdout: str, stderr: str, returncode: int, python: Path) -> dict:
    """The peer's result (its last PEER_RESULT line), or PeerError: one line naming what went wrong."""
    where = f"the d3rlpy peer ({python})"
    if returncode != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else "no error output"
        hint = (" (make the peer environment with --make-peer-env, or pass --peer-python a python with d3rlpy 2.8.1)"
                if "No module named" in reason else "")
        raise PeerError(f"{where} failed (exit {returncode}): {reason}{hint}")
    results = [line[len(RESULT_PREFIX):] for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not results:
        raise PeerError(f"{where} exited 0 but printed no {RESULT_PREFIX.strip()} line")
    try:
        result = json.loads(results[-1])
    except ValueError as e:
        raise PeerError(f"{where} printed a {RESULT_PREFIX.strip()} line that is not JSON ({e})") from None
    missing = {"samples_per_s", "eval_env_steps_per_s", "d3rlpy"} - set(result if isinstance(result, dict) else ())
    if missing:
        raise PeerError(f"{where}'s result lacks {', '.join(sorted(missing))}")
    return result


def run_peer(python: Path, episodes_path: Path, settings: dict, threads: int) -> dict:
    """One round of the peer (training, then evaluation) in a fresh process, `threads` CPU threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = peer_command(python, episodes_path, {**settings, "threads": threads})
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    return parse_peer_output(done.stdout, done.stderr, done.returncode, python)
