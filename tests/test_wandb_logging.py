"""--wandb (optional extra): offline mode writes a wandb run named after the run folder, with the run's
config and the same scalars as metrics.jsonl; --resume continues the same wandb run id; without the
package --wandb is one line; off by default nothing of wandb is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.run import train_agent
from sequence_models.training.cli import run_cli
from sequence_models.training.config import ConfigError
from sequence_models.training.wandb_logging import ID_FILE
from tests.agent_helpers import tiny_config
from tests.script_loading import load_script

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb-dir").mkdir()
    return tmp_path / "wandb-dir"


def test_offline_run_records_config_and_scalars_and_resume_keeps_the_id(tmp_path, offline):
    config = tiny_config(tmp_path, wandb=True, wandb_project="p", wandb_group="g", wandb_tags=("a", "b"), eval_video=1,
                         eval_max_steps=4)
    results = train_agent(config, quiet=True)
    import wandb

    wandb.teardown()  # the service process writes the record log; teardown waits for it
    run = Path(results["run_dir"])
    run_id = (run / ID_FILE).read_text().strip()
    [folder] = list((offline / "wandb").glob(f"offline-run-*-{run_id}"))
    # offline, wandb writes one record log (protobuf; `wandb sync` uploads it): the run's name, group,
    # tags and config and every scalar metrics.jsonl has are in it
    records = (folder / f"run-{run_id}.wandb").read_bytes()
    scalars = {key for line in (run / "metrics.jsonl").read_text().splitlines() for key in json.loads(line)} - {"step"}
    for text in [results["run"], "context_len", '"g"', *scalars, "video/target9000/ep0"]:
        assert text.encode() in records, text
    assert list((folder / "files" / "media" / "videos").rglob("*.mp4")) or list(folder.rglob("*.gif"))

    resumed = train_agent(tiny_config(tmp_path, steps=6, run_name=results["run"], resume=True, wandb=True), quiet=True)
    assert (run / ID_FILE).read_text().strip() == run_id and resumed["steps"] == 6
    assert not set((offline / "wandb").glob("offline-run-*")) - set((offline / "wandb").glob(f"offline-run-*-{run_id}"))


def test_without_the_package_wandb_is_one_line(monkeypatch, capsys):
    import sequence_models.training.wandb_logging as wandb_logging

    monkeypatch.setattr(wandb_logging, "wandb_missing", lambda: True)
    with pytest.raises(SystemExit) as stop:
        run_cli(load_script("train_lm").main, ["--wandb", "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err == "error: --wandb needs the wandb package: pip install -e '.[wandb]'"
    with pytest.raises(ConfigError, match="pip install"):
        wandb_logging.WandbSink(None, Path("."), {})


def test_off_by_default_nothing_of_wandb_is_imported(tmp_path):
    code = ("import sys; from agents.run import train_agent; from tests.agent_helpers import tiny_config; "
            f"train_agent(tiny_config(__import__('pathlib').Path({str(tmp_path)!r})), quiet=True); "
            "print('wandb' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr[-2000:]
