"""Nothing a file says runs as code: a checkpoint or a Minari dataset whose stored env spec names a
foreign entry point (os:system) or wrapper is refused, with one line, by evaluate_agent, by --resume
and by training, and the command it names never runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.run import train_agent
from envs.env_specs import env_spec_to_data
from sequence_models.training.cli import run_cli
from tests.agent_helpers import tiny_config
from tests.script_loading import load_script
from tests.test_envs_specs import good_spec, write_dataset

REPO = Path(__file__).resolve().parents[1]


def attacks(marker: Path) -> dict[str, dict]:
    good = env_spec_to_data(good_spec())
    command = {"command": f"touch {marker}"}
    return {
        "entry_point": dict(good, id="Pwn-v0", entry_point="os:system", kwargs=command),
        "wrapper": dict(good, additional_wrappers=[{"name": "Pwn", "entry_point": "os:system", "kwargs": command}]),
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    train_agent(tiny_config(root, run_name="victim", steps=2), quiet=True)
    return root / "runs" / "victim"


def poisoned_copy(trained_run: Path, tmp_path: Path, spec: dict) -> Path:
    """The trained run folder, copied, with its last.pt's dataset_info naming `spec` (plain JSON:
    it passes torch's weights_only loader)."""
    run = tmp_path / "runs" / "victim"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text((trained_run / "config.yaml").read_text())
    payload = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)
    payload["dataset_info"]["env_spec"] = json.dumps(spec)
    torch.save(payload, run / "checkpoints" / "last.pt")
    return run


def cli(script: str, argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        run_cli(load_script(script).main, argv)
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("attack", ["entry_point", "wrapper"])
def test_a_poisoned_checkpoint_is_refused_by_evaluation_and_resume(trained_run, tmp_path, attack, capsys):
    marker = tmp_path / "pwned"
    run = poisoned_copy(trained_run, tmp_path, attacks(marker)[attack])
    code, err = cli("evaluate_agent", [str(run / "checkpoints" / "last.pt"), "--episodes", "1"], capsys)
    assert code == 1 and err.startswith("error: ") and "--allow-foreign-env" in err and "os:system" in err, err
    code, err = cli("train_agent", ["--config", str(run / "config.yaml"), "--runs-dir", str(tmp_path / "runs"),
                                    "--resume", "--steps", "4"], capsys)
    assert code == 1 and "--allow-foreign-env" in err, err
    assert not marker.exists()


def test_a_poisoned_checkpoint_through_the_real_command(trained_run, tmp_path):
    """The same as a user runs it: a new interpreter, exit code 1, one line, no traceback."""
    marker = tmp_path / "pwned"
    run = poisoned_copy(trained_run, tmp_path, attacks(marker)["entry_point"])
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_agent.py"), str(run)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "refused" in done.stderr
    assert not marker.exists()


@pytest.mark.parametrize("attack", ["entry_point", "wrapper"])
def test_training_on_a_poisoned_dataset_is_refused(tmp_path, monkeypatch, attack, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    marker = tmp_path / "pwned"
    write_dataset("evil/pendulum-v0", attacks(marker)[attack])
    code, err = cli("train_agent", ["--dataset", "evil/pendulum-v0", "--runs-dir", str(tmp_path / "runs"),
                                    "--steps", "2", "--device", "cpu", "--no-progress"], capsys)
    assert code != 0 and "--allow-foreign-env" in err and "Traceback" not in err, err
    assert not marker.exists()
