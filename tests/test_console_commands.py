"""The console commands ([project.scripts], prefix db-): every entry point imports, each script in
scripts/ is an alias of one, and every command's --help works from a folder outside the checkout.
(Nothing is reinstalled: the entry-point table is read from pyproject.toml.)"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.script_loading import load_script

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
SCRIPTS = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))


def _target(name: str):
    module, function = ENTRY_POINTS[name].split(":")
    return module, function


def test_every_script_has_a_db_command_pointing_into_a_package():
    assert sorted(ENTRY_POINTS) == sorted(f"db-{s.replace('_', '-')}" for s in SCRIPTS)
    for name in ENTRY_POINTS:
        module, function = _target(name)
        assert module.split(".")[0] in ("agents", "sequence_models", "envs"), name
        assert callable(getattr(importlib.import_module(module), function)), name


def test_sequence_models_commands_never_import_agents():
    done = subprocess.run([sys.executable, "-c", "import sys, sequence_models.commands as c; c.train_lm; "
                           "print(any(m.split('.')[0] == 'agents' for m in sys.modules))"],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "benchmark"])
def test_scripts_are_aliases_of_the_commands(script):
    module, function = _target(f"db-{script.replace('_', '-')}")
    alias = load_script(script)
    assert alias.main is getattr(importlib.import_module(module), f"{function}_main")


def test_gpu_check_budget_default_is_the_checks_budget():
    from sequence_models.benchmarks.gpu_check import BUDGET_SECONDS
    from sequence_models.commands import GpuCheckArgs

    assert GpuCheckArgs().budget_seconds == BUDGET_SECONDS


HELP_ALL = """
import contextlib, io, json, sys
from importlib import import_module
results = {}
for name, target in json.loads(sys.argv[1]).items():
    module, function = target.split(":")
    sys.argv = [name, "--help"]
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            getattr(import_module(module), function)()
        except SystemExit as e:
            code = e.code or 0
    results[name] = [code, out.getvalue()]
print(json.dumps(results))
"""


def test_help_of_every_command_from_another_folder(tmp_path):
    """Every command's --help, from a folder outside the checkout (one interpreter for all of them)."""
    import json

    done = subprocess.run([sys.executable, "-c", HELP_ALL, json.dumps(ENTRY_POINTS)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(ENTRY_POINTS)
    for name, (code, out) in results.items():
        assert code == 0, (name, out[-500:])
        assert "usage" in out.lower() and "--help" in out, (name, out[-500:])

LIGHT_HELP = ("db-train-agent", "db-train-lm", "db-train-copy", "db-evaluate-agent", "db-benchmark", "db-sweep",
              "db-report", "db-claims", "db-gpu-check", "db-make-dataset", "db-measure-reference-scores")
"""commands whose --help loads only their configs: no torch, gymnasium or minari (so it answers in well under 3 s)"""

HELP_LIGHT = """
import contextlib, io, json, sys
from importlib import import_module
heavy = {}
for name, target in json.loads(sys.argv[1]).items():
    module, function = target.split(":")
    sys.argv = [name, "--help"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        getattr(import_module(module), function)()
    heavy[name] = sorted(m for m in ("torch", "gymnasium", "minari", "matplotlib") if m in sys.modules)
print(json.dumps(heavy))
"""


def test_help_loads_no_torch_or_gymnasium():
    import json

    targets = {name: ENTRY_POINTS[name] for name in LIGHT_HELP}
    done = subprocess.run([sys.executable, "-c", HELP_LIGHT, json.dumps(targets)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert heavy == {name: [] for name in LIGHT_HELP}
