"""The peers suite (d3rlpy's DecisionTransformer vs ours) without the peer: our rows at a tiny size and
the line saying how to make the peer's environment; the aligned episodes handed to the peer; the
peer's output parsed, and its failures as one line; the ratio and target arithmetic on hand-made
rounds. No network, no d3rlpy (tests/test_d3rlpy_minari_alignment.py runs where it is). Timings are
never asserted."""

import csv
import importlib.util
import sys
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from agents.benchmarks import peer_process, peers
from agents.benchmarks.options import AgentBenchmarkArgs
from agents.benchmarks.peer_process import (
    PeerError,
    find_peer_python,
    parse_peer_output,
    peer_command,
    peer_install_commands,
    run_peer,
    write_peer_episodes,
)
from envs.minari_loading import load_episodes
from tests.script_loading import load_script

bench = load_script("benchmark")
TINY = {"embed": 16, "n_layers": 1, "episodes": 2, "baseline_episodes": 1, "max_steps": 8, "peers_train_steps": 1,
        "peers_warmup_steps": 1, "train_batch": 4, "repeats": 1, "plots": False}
GOOD = 'PEER_RESULT {"d3rlpy": "2.8.1", "samples_per_s": 100.0, "eval_env_steps_per_s": 200.0}'


def _read(path: Path) -> list[dict]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_suite_without_the_peer_runs_our_rows_and_says_how_to_make_it(tmp_path, capsys):
    bench.main(bench.Args(suite="peers", peer_venv=tmp_path / "no-venv", out_dir=tmp_path, **TINY))
    out = capsys.readouterr().out
    how = [line for line in out.splitlines() if line.startswith("peers suite: no d3rlpy environment")]
    assert len(how) == 1 and str(tmp_path / "no-venv") in how[0] and "--make-peer-env" in how[0] and "--peer-python" in how[0]
    train = _read(tmp_path / "peers_train.csv")
    assert [(r["side"], r["backbone"]) for r in train[1:]] == [("ours", "transformer"), ("ours", "mingru")]
    assert train[0]["samples_per_s"] == "" and all(float(r["samples_per_s"]) > 0 and r["vs_d3rlpy"] == "" for r in train[1:])
    evaluation = _read(tmp_path / "peers_eval.csv")
    assert {(r["backbone"], r["method"]) for r in evaluation[1:]} == {
        (b, m) for b in ("transformer", "mingru")
        for m in (peers.EMULATION, "ours, vector env, window", "ours, vector env, recurrent")}
    assert all(float(r["env_steps_per_s"]) > 0 for r in evaluation[1:])
    targets = _read(tmp_path / "peers_targets.csv")
    assert len(targets) == 6 and all(t["status"].startswith("not measured (no d3rlpy") for t in targets)
    assert [r["side"] for r in _read(tmp_path / "peers_versions.csv")] == ["ours"]
    assert (tmp_path / "peers.md").read_text().startswith("device: cpu")


def test_ratios_and_targets_from_hand_made_rounds():
    args = AgentBenchmarkArgs(**{k: v for k, v in TINY.items() if k != "repeats"}, repeats=2)
    rates = {"train": 300.0, peers.EMULATION: 400.0, "ours, vector env, window": 1000.0, "ours, vector env, recurrent": 4000.0}
    ours = {"transformer": [rates, {k: 2 * v for k, v in rates.items()}], "mingru": [rates, rates]}
    peer = [{"samples_per_s": 100.0, "eval_env_steps_per_s": 200.0, "d3rlpy": "2.8.1", "torch": "t", "gymnasium": "1.0.0"},
            {"samples_per_s": 200.0, "eval_env_steps_per_s": 200.0, "d3rlpy": "2.8.1", "torch": "t", "gymnasium": "1.0.0"}]
    train, evaluation, targets, versions = (t.rows for t in peers.peer_tables(ours, peer, args))
    assert train[0]["samples_per_s"] == 150.0 and train[0]["vs_d3rlpy"] == 1.0
    assert train[1]["samples_per_s"] == 450.0 and train[1]["vs_d3rlpy"] == pytest.approx(3.0)
    assert train[1]["per_round"] == "3.00, 3.00" and train[2]["per_round"] == "3.00, 1.50"
    recurrent = next(r for r in evaluation if r["backbone"] == "mingru" and r["method"].endswith("recurrent"))
    assert recurrent["vs_d3rlpy"] == pytest.approx(20.0) and recurrent["envs"] == 2
    assert [t["status"] for t in targets] == ["met", "not met", "met", "met", "met", "met"]  # minGRU trains 2.0x < 2.5x
    assert [v["side"] for v in versions] == ["ours", "peer"] and versions[1]["d3rlpy"] == "2.8.1"
    slow_peer = [{**p, "eval_env_steps_per_s": 300.0} for p in peer]  # transformer 5x / 20x, minGRU 3.3x / 13x
    targets = peers.peer_tables(ours, slow_peer, args)[2].rows
    assert [t["status"] for t in targets[2:]] == ["met", "met", "not met", "not met"]


@pytest.fixture()
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


@pytest.mark.filterwarnings("ignore::UserWarning:minari")
def test_export_keeps_every_episode_aligned_and_flags_its_end(minari_root, tmp_path):
    # state = (episode, t), the action taken in it = 1000 episode + t; episode 1 ends terminated, episode 3
    # with neither flag (a cut-off recording): its end must still be marked for d3rlpy
    lengths, ends = [5, 1, 7, 3], ["truncated", "terminated", "truncated", "neither"]
    buffers = []
    for e, (steps, end) in enumerate(zip(lengths, ends)):
        observations = np.stack([np.full(steps + 1, e), np.arange(steps + 1)], axis=1).astype(np.float64)
        terminations, truncations = np.zeros(steps, bool), np.zeros(steps, bool)
        terminations[-1], truncations[-1] = end == "terminated", end == "truncated"
        buffers.append(EpisodeBuffer(observations=observations, actions=(e * 1000 + np.arange(steps))[:, None].astype(np.float32),
                                     rewards=np.ones(steps), terminations=terminations, truncations=truncations, infos={}))
    minari.create_dataset_from_buffers("tests/peers-counter-v0", buffers,
                                       observation_space=gym.spaces.Box(-np.inf, np.inf, (2,), np.float64),
                                       action_space=gym.spaces.Box(-1e6, 1e6, (1,), np.float32))
    data = np.load(write_peer_episodes(load_episodes("tests/peers-counter-v0"), tmp_path / "episodes.npz"))
    assert sorted(data.files) == ["actions", "observations", "rewards", "terminals", "timeouts"]
    assert len(data["observations"]) == len(data["actions"]) == sum(lengths)  # T states per episode, not T + 1
    ends_at = np.flatnonzero(data["terminals"] + data["timeouts"]) + 1
    assert list(ends_at) == list(np.cumsum(lengths))  # d3rlpy splits exactly where our episodes end
    assert not np.any(data["terminals"] * data["timeouts"])
    assert list(data["terminals"][ends_at - 1]) == [0, 1, 0, 0]
    for e, (start, stop) in enumerate(zip([0, *ends_at[:-1]], ends_at)):
        states, actions = data["observations"][start:stop], data["actions"][start:stop, 0]
        assert np.all(states[:, 0] == e) and np.array_equal(states[:, 1], np.arange(stop - start))
        assert np.array_equal(actions, 1000 * states[:, 0] + states[:, 1])  # each action beside its own state


def test_peer_output_parsed_and_failures_are_one_line():
    python = Path("/peer/bin/python")
    assert parse_peer_output("d3rlpy log noise\n" + GOOD + "\n", "", 0, python)["samples_per_s"] == 100.0
    cases = [("", "Traceback (most recent call last):\n  File x\nValueError: boom\n", 1, r"failed \(exit 1\): ValueError: boom$"),
             ("", "", 3, r"failed \(exit 3\): no error output"),
             ("only noise\n", "", 0, "printed no PEER_RESULT line"),
             ("PEER_RESULT {not json\n", "", 0, "not JSON"),
             ('PEER_RESULT {"d3rlpy": "2.8.1"}\n', "", 0, "lacks eval_env_steps_per_s, samples_per_s")]
    for stdout, stderr, code, message in cases:
        with pytest.raises(PeerError, match=message) as error:
            parse_peer_output(stdout, stderr, code, python)
        assert "\n" not in str(error.value) and str(python) in str(error.value)


@pytest.mark.skipif(importlib.util.find_spec("d3rlpy") is not None, reason="d3rlpy is importable here")
def test_a_python_without_d3rlpy_fails_in_one_line_with_the_way_out(tmp_path):
    with pytest.raises(PeerError, match="No module named 'd3rlpy'.*--make-peer-env") as error:
        run_peer(Path(sys.executable), tmp_path / "episodes.npz", {"train_steps": 1}, threads=1)
    assert "\n" not in str(error.value)


def test_peer_python_and_environment_commands(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--peer-python .* is not a file"):
        find_peer_python(tmp_path / "nope", tmp_path / "venv", make=False)
    assert find_peer_python(None, tmp_path / "venv", make=False) is None
    commands = peer_install_commands(tmp_path / "venv")
    assert commands[0][1:3] == ["-m", "venv"] and commands[1][-1].startswith("torch==") and "+" not in commands[1][-1]
    assert "d3rlpy==2.8.1" in commands[2] and "gymnasium[mujoco]==1.0.0" in commands[2]
    monkeypatch.setattr(peer_process.subprocess, "call", lambda command: 1)
    with pytest.raises(PeerError, match="making the peer environment failed .* -m venv"):
        find_peer_python(None, tmp_path / "venv", make=True)
    command = peer_command(Path("py"), Path("e.npz"), {"train_steps": 3, "env_id": "X-v5"})
    assert command[1].endswith("peer_d3rlpy.py") and command[2:] == ["--episodes", "e.npz", "--train-steps", "3", "--env-id", "X-v5"]
