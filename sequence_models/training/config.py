"""What every training task shares in its config, and the one parser every training CLI uses.

A task's config is a frozen dataclass that nests `RunConfig` (where and how the run happens) and
`OptimConfig` (the optimiser and its schedule) next to its own fields. Both nest without a prefix,
so the flags stay flat: `--seed 1 --lr 3e-4`, not `--run.seed`.

    parse_config(AgentConfig, PRESETS, "quick")     # --preset NAME | --config FILE, then flags

`--preset NAME` takes a complete set of defaults; `--config runs/NAME/config.yaml` takes a finished
run's config (config.yaml is `{task, command, config}`, the same shape for every task); any flag
after either overrides one field. Every value is checked when the config is built; a problem is one
line (ConfigError, exit code 2), never a traceback.

`to_plain` / `from_plain` turn a config into dicts, lists, numbers and strings (for config.yaml and
for checkpoints, which load with weights_only=True) and back, checking every field's type.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, TypeVar

import tyro
import yaml

from ..backbone_configs import BACKBONE_CONFIGS, BackboneConfig, backbone_config
from ..kernels.backend import ScanBackend

Schedule = Literal["cosine", "step", "constant"]
C = TypeVar("C")


class ConfigError(ValueError):
    """A config that cannot be used: the message says which field and what to do."""


def check(problems: list[str]) -> None:
    if problems:
        raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class RunConfig:
    run_name: str = ""
    """folder under runs_dir (default: a name from the task's settings); a taken name gets -2, -3, ..."""
    runs_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    """auto (cuda if available), cpu, cuda, cuda:1, ..."""
    cpu_threads: int = 1
    """torch threads on CPU (0: torch's default). 1 is fastest for small models, and far faster on a shared machine"""
    amp: bool = True
    """bfloat16 autocast for training and evaluation (scans, recurrences and losses stay float32) on CUDA and on CPUs with native bf16 (avx512_bf16 / amx_bf16); elsewhere float32, with one note"""
    compile: bool = False
    """torch.compile the model for training"""
    scan_backend: ScanBackend = "auto"
    """scan kernels: auto (fused C++ on CPU, Triton on CUDA, else PyTorch), cpu, triton or torch"""
    resume: bool = False
    """continue runs_dir/run_name from checkpoints/last.pt: same data order, optimizer, schedule, state and RNGs"""
    log_every: int = 50
    """steps between training-loss logs"""
    checkpoint_every: int = 500
    """steps between writes of checkpoints/last.pt (also written at the end)"""
    eval_every: int = 0
    """steps between evaluations (best.pt follows the score); 0: once per epoch where the task has epochs, else at the end"""
    progress: bool = True
    """show a progress bar"""
    dist_timeout_s: float = 600.0
    """under torchrun: seconds a rank waits in a collective for the others before it gives up (a hung rank)"""
    wandb: bool = False
    """also log to Weights & Biases (pip install -e '.[wandb]'; WANDB_MODE=offline needs no network); --resume continues the same wandb run"""
    wandb_project: str = "decision-backbones"
    wandb_entity: str = ""
    """wandb team or user (default: your default entity)"""
    wandb_group: str = ""
    """wandb group, e.g. a sweep's name (default: none)"""
    wandb_tags: tuple[str, ...] = ()
    """wandb tags (default: none)"""

    def __post_init__(self) -> None:
        problems = []
        if self.cpu_threads < 0 or self.eval_every < 0:
            problems.append(f"cpu_threads and eval_every must be >= 0, got {self.cpu_threads} and {self.eval_every}")
        if self.log_every < 1 or self.checkpoint_every < 1:
            problems.append(f"log_every and checkpoint_every must be >= 1, got {self.log_every} and {self.checkpoint_every}")
        if not self.dist_timeout_s > 0:
            problems.append(f"dist_timeout_s must be > 0, got {self.dist_timeout_s}")
        if "/" in self.run_name or self.run_name in (".", ".."):
            problems.append(f"run_name must be a plain folder name, got {self.run_name!r}")
        check(problems)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 1e-4
    """AdamW decay on weight matrices; none on norms, embeddings, biases, recurrent parameters, DSF feedback"""
    warmup_steps: int = 100
    """linear warm-up from lr/warmup_steps to lr"""
    schedule: Schedule = "cosine"
    """after the warm-up: cosine down to min_lr_ratio x lr, step (x lr_gamma every lr_step_epochs) or constant"""
    min_lr_ratio: float = 0.1
    """cosine: the final lr as a fraction of lr"""
    lr_step_epochs: float = 10.0
    """step schedule: epochs between multiplications by lr_gamma (tasks with epochs only)"""
    lr_gamma: float = 0.1
    grad_clip: float = 0.25
    """grad-norm clip (0: none)"""

    def __post_init__(self) -> None:
        problems = []
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            problems.append(f"beta1 and beta2 must be in [0, 1), got {self.beta1} and {self.beta2}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            problems.append("weight_decay, grad_clip and warmup_steps must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not self.lr_step_epochs > 0 or not 0 < self.lr_gamma <= 1:
            problems.append(f"lr_step_epochs must be > 0 and lr_gamma in (0, 1], got {self.lr_step_epochs} and {self.lr_gamma}")
        check(problems)


# The two nest without a flag prefix: --seed, --lr.
Run = Annotated[RunConfig, tyro.conf.OmitArgPrefixes]
Optim = Annotated[OptimConfig, tyro.conf.OmitArgPrefixes]


def override(config: C, **values: Any) -> C:
    """dataclasses.replace that also reaches the nested run/optim configs by their field names:
    override(config, seed=1, lr=3e-4, steps=10)."""
    own = {f.name for f in dataclasses.fields(config)}
    changes = {k: v for k, v in values.items() if k in own}
    for field in dataclasses.fields(config):
        inner = getattr(config, field.name)
        if dataclasses.is_dataclass(inner) and not isinstance(inner, BackboneConfig):
            names = {f.name for f in dataclasses.fields(inner)}
            mine = {k: v for k, v in values.items() if k in names and k not in own}
            if mine:
                changes[field.name] = dataclasses.replace(inner, **mine)
                values = {k: v for k, v in values.items() if k not in mine}
    unknown = set(values) - set(changes) - own
    if unknown:
        raise ConfigError(f"{type(config).__name__} has no field(s) {sorted(unknown)}")
    return dataclasses.replace(config, **changes)


# -- plain data ---------------------------------------------------------------------------------------
def flat_fields(plain: dict[str, Any]) -> dict[str, Any]:
    """{"run": {"seed": 0}} -> {"seed": 0}; the backbone stays one value (it is compared whole)."""
    out = {}
    for key, value in plain.items():
        if isinstance(value, dict) and key != "backbone":
            out.update(flat_fields(value))
        else:
            out[key] = value
    return out


def to_plain(config: Any) -> dict[str, Any]:
    """Dicts, lists, numbers and strings only; a backbone carries its registry name."""
    plain: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, BackboneConfig):
            plain[field.name] = {"name": value.name, **dataclasses.asdict(value)}
        elif dataclasses.is_dataclass(value):
            plain[field.name] = to_plain(value)
        elif isinstance(value, tuple):
            plain[field.name] = list(value)
        else:
            plain[field.name] = value
    return plain


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _value(tp: Any, value: Any, where: str) -> Any:
    """`value` checked (and, where lossless, converted) against the annotation `tp`."""
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where} must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = [_strip(t) for t in typing.get_args(tp)]
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _value(option, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of its types")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        element = typing.get_args(tp)[0]
        return tuple(_value(element, v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, Path):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a path string, got {value!r}")
        return tp(value)
    if dataclasses.is_dataclass(tp):
        return from_plain(tp, value, where)
    raise ConfigError(f"{where}: cannot read a value of type {tp!r} from a file")


def _backbone(value: Any, where: str) -> BackboneConfig:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ConfigError(f"{where} must be a mapping with a 'name' (one of {', '.join(BACKBONE_CONFIGS)})")
    fields = dict(value)
    name = fields.pop("name")
    if name not in BACKBONE_CONFIGS:
        backbone_config(name)  # raises the registry's message, with a did-you-mean
    cls = BACKBONE_CONFIGS[name]
    hints = typing.get_type_hints(cls, include_extras=True)
    unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"{where}: backbone {name!r} has no option(s) {sorted(unknown)}")
    return cls(**{k: _value(hints[k], v, f"{where}.{k}") for k, v in fields.items()})


def from_plain(config_class: type[C], plain: Any, where: str = "config") -> C:
    """The config a to_plain dict describes; a ConfigError names the first field that does not fit.
    Fields the dict leaves out take the class's defaults, except those in its DEFAULTS_BEFORE (a field
    added with a new default: a dict without it was saved before it existed and keeps the old value)."""
    if not isinstance(plain, dict):
        raise ConfigError(f"{where} must be a mapping of field names to values, got {type(plain).__name__}")
    hints = typing.get_type_hints(config_class, include_extras=True)
    names = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(plain) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {', '.join(names)}")
    values = {}
    for name, value in {**getattr(config_class, "DEFAULTS_BEFORE", {}), **plain}.items():
        if name == "backbone":
            values[name] = _backbone(value, f"{where}.backbone")
        else:
            values[name] = _value(hints[name], value, f"{where}.{name}")
    try:
        return config_class(**values)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from None


# -- config.yaml ----------------------------------------------------------------------------------------
def config_document(task: str, plain: dict[str, Any], command: str) -> dict[str, Any]:
    """What config.yaml holds, for every task: the task's name, the command that ran it, the config
    (to_plain's)."""
    return {"task": task, "command": command, "config": plain}


def load_config_file(path: str | Path, config_class: type[C], task: str) -> C:
    """The config in a config.yaml (yaml.safe_load: a file never runs code); one line per problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        document = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise ConfigError(f"--config {path} is not a run's config.yaml (expected a mapping with a 'config' mapping)")
    if document.get("task", task) != task:
        raise ConfigError(f"--config {path} is the config of a {document['task']!r} run, not of a {task!r} run")
    return from_plain(config_class, document["config"], where=f"--config {path}")


@contextlib.contextmanager
def _one_line_errors():
    """tyro's parse errors as ConfigError lines (its default is a multi-line box)."""
    errors = getattr(tyro, "_errors", None)
    hook = getattr(errors, "on_parse_error", None)
    if hook is None:  # an older tyro: its own messages
        yield
        return

    def to_line(event) -> None:
        argument = getattr(event, "argument", None)
        flag = "/".join(getattr(getattr(argument, "lowered", None), "name_or_flags", ()) or ()) or "a value"
        if isinstance(event, errors.InstantiationFailure):
            raise ConfigError(event.message)
        if isinstance(event, errors.UnrecognizedArgs):
            raise ConfigError(f"unrecognized argument(s) {' '.join(event.tokens)} (see --help)")
        if isinstance(event, errors.InvalidChoice):
            raise ConfigError(f"{flag}: {event.value!r} is not one of {', '.join(event.choices)}")

    with hook(to_line):
        yield


def cli(config_class: type[C], argv: list[str] | None = None, description: str | None = None,
        default: C | None = None) -> C:
    """tyro.cli with one-line ConfigErrors for values that do not fit (--help still prints help)."""
    try:
        with _one_line_errors():
            return tyro.cli(config_class, default=default, args=argv, description=description)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None


BACKBONE_SHAPE = ("d_model", "n_layers", "dropout")
"""what a backbone swapped by `backbone:NAME` keeps from the preset (or --config) it replaces"""


def keep_backbone_shape(config: C, default: C, argv: list[str]) -> C:
    """`backbone:NAME` naming another backbone than the default's: the new one keeps the default's d_model,
    n_layers and dropout where no --backbone.* flag sets them (so a swap compares backbones of one shape);
    its other options start at NAME's defaults."""
    new, old = getattr(config, "backbone", None), getattr(default, "backbone", None)
    if new is None or old is None or type(new) is type(old):
        return config
    given = {a.split("=")[0].removeprefix("--backbone.").replace("-", "_") for a in argv if a.startswith("--backbone.")}
    kept = {name: getattr(old, name) for name in BACKBONE_SHAPE if name not in given}
    try:
        return dataclasses.replace(config, backbone=dataclasses.replace(new, **kept))
    except (ValueError, TypeError) as e:
        shape = ", ".join(f"{k}={v}" for k, v in kept.items())
        raise ConfigError(f"backbone:{new.name} with the preset's {shape}: {e}") from None


def parse_config(config_class: type[C], presets: dict[str, Callable[[], C]], default_preset: str, task: str,
                 argv: list[str] | None = None, description: str | None = None) -> C:
    """--preset NAME or --config FILE first (the defaults), then every other flag through tyro.

    The config class has a `preset` field (so --help lists the presets); a ConfigError says what
    does not fit."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    if known.config and known.preset:
        raise ConfigError("give --preset or --config, not both")
    if known.config:
        default = load_config_file(known.config, config_class, task)
    else:
        name = known.preset or default_preset
        if name not in presets:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(presets)}")
        default = dataclasses.replace(presets[name](), preset=name)
    config = keep_backbone_shape(cli(config_class, rest, description, default), default, rest)
    run = getattr(config, "run", None)
    if getattr(run, "wandb", False):  # stop before any data is loaded, not at the first log
        from .wandb_logging import INSTALL_HINT, wandb_missing

        if wandb_missing():
            raise ConfigError(INSTALL_HINT)
    return config
