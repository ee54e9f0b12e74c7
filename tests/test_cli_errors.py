"""Every mistake a user can make on the command line gets one line on stderr, exit code 2 for bad input
and 1 for a runtime failure, never a traceback (the CLIs' mains run through run_cli, as
`python scripts/X.py` runs them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sequence_models.training.cli import run_cli
from tests.script_loading import load_script


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    agent_doc = {"task": "agent", "command": "", "config": {"steps": 10}}
    return {
        "malformed": write("malformed.yaml", "config: [unclosed"),
        "empty": write("empty.yaml", ""),
        "list": write("list.yaml", "- 1\n- 2\n"),
        "unknown": write("unknown.yaml", yaml.safe_dump({**agent_doc, "config": {"stepz": 10}})),
        "wrong_type": write("wrong_type.yaml", yaml.safe_dump({**agent_doc, "config": {"steps": "ten"}})),
        "wrong_nested": write("wrong_nested.yaml", yaml.safe_dump({**agent_doc, "config": {"optim": {"lr": "fast"}}})),
        "bad_backbone": write("bad_backbone.yaml", yaml.safe_dump({**agent_doc, "config": {"backbone": {"name": "mingruu"}}})),
        "lm_run": write("lm_run.yaml", yaml.safe_dump({"task": "lm", "command": "", "config": {}})),
        "a_file": write("a_file", "not a folder"),
    }


CASES = [
    # (script, argv with {placeholders}, exit code, words the message must hold)
    ("train_agent", ["--config", "{tmp}/missing.yaml"], 2, "no such file"),
    ("train_agent", ["--config", "{malformed}"], 2, "not valid YAML"),
    ("train_agent", ["--config", "{empty}"], 2, "not a run's config.yaml"),
    ("train_agent", ["--config", "{list}"], 2, "not a run's config.yaml"),
    ("train_agent", ["--config", "{unknown}"], 2, "unknown field(s) ['stepz']"),
    ("train_agent", ["--config", "{wrong_type}"], 2, "steps must be an integer"),
    ("train_agent", ["--config", "{wrong_nested}"], 2, "optim.lr must be a number"),
    ("train_agent", ["--config", "{bad_backbone}"], 2, "did you mean 'mingru'"),
    ("train_agent", ["--config", "{lm_run}"], 2, "'lm' run, not of a 'agent' run"),
    ("train_agent", ["--preset", "hoper-medium"], 2, "unknown preset"),
    ("train_agent", ["--dataset", "nope", "--runs-dir", "{tmp}/runs"], 2, "not a Minari dataset id"),
    ("train_agent", ["--device", "gpu"], 2, "device 'gpu'"),
    ("train_agent", ["--runs-dir", "{a_file}/runs", "--device", "cpu"], 1, "a path component is a file"),
    ("train_agent", ["--steps", "-1"], 2, "steps must be >= 1"),
    ("train_agent", ["--context-len", "0"], 2, "context_len must be >= 1"),
    ("train_agent", ["--run-name", "x", "--runs-dir", "{tmp}/runs", "--resume", "--device", "cpu"], 1, "no checkpoint"),
    ("train_lm", ["--steps", "-1"], 2, "steps must be >= 0"),
    ("train_lm", ["--batch-size", "0"], 2, "batch_size"),
    ("train_lm", ["--seq-len", "0"], 2, "seq_len"),
    ("train_lm", ["--lr", "0"], 2, "lr must be > 0"),
    ("train_lm", ["--config", "{unknown}"], 2, "of a 'agent' run, not of a 'lm' run"),
    ("train_copy", ["--batch-size", "0"], 2, "batch_size"),
    ("train_copy", ["--n-memorize", "0"], 2, "n_memorize"),
    ("train_copy", ["--schedule", "step", "--device", "cpu", "--runs-dir", "{tmp}/runs"], 2, "this task has none"),
    ("claims", ["--device", "gpu", "--out-dir", "{tmp}/claims"], 2, "device 'gpu'"),  # before any run starts
    ("evaluate_agent", ["{tmp}/nothing.pt"], 1, "does not exist"),
    ("evaluate_agent", ["{tmp}/nothing.pt", "--seed", "-1"], 2, "--seed must be >= 0"),
    ("evaluate_agent", ["{tmp}/nothing.pt", "--output", "{tmp}/no/such/folder/out.json"], 2, "does not exist"),
]


@pytest.mark.parametrize("script,argv,code,words", CASES, ids=[f"{c[0]}:{' '.join(c[1])[:40]}" for c in CASES])
def test_one_line_and_an_exit_code(tmp_path, files, capsys, script, argv, code, words):
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    with pytest.raises(SystemExit) as e:
        run_cli(load_script(script).main, argv)
    err = capsys.readouterr().err
    assert e.value.code == code, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert words in err, err


def test_a_bug_names_its_type_and_the_debug_switch(capsys, monkeypatch):
    def broken(argv):
        raise ZeroDivisionError("division by zero")

    with pytest.raises(SystemExit) as e:
        run_cli(broken, [])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "ZeroDivisionError: division by zero" in err and "DECISION_BACKBONES_DEBUG=1" in err
    monkeypatch.setenv("DECISION_BACKBONES_DEBUG", "1")
    with pytest.raises(SystemExit):
        run_cli(broken, [])
    assert "Traceback" in capsys.readouterr().err
