"""Environment specs read from files are data: rebuilt from the Gymnasium registry, never imported.

A Gymnasium EnvSpec names code: `entry_point` and `vector_entry_point` ("module:attr", imported and
called by gym.make / gym.make_vec) and `additional_wrappers` (each one's entry point imported and
called on the env). A checkpoint or a Minari dataset stores its spec as JSON, so whoever wrote the
file chooses that code: `"entry_point": "os:system", "kwargs": {"command": ...}` runs a shell
command when the env is made. Minari itself calls gym.make on a stored spec when the dataset's
metadata lacks its spaces, so a spec must be checked before minari.load_dataset too.

`env_spec_from_data` therefore takes only the DATA of a stored spec (the id, the time limit, the
env kwargs, a few booleans) and takes all CODE from the spec registered under that id in this
process (gym.registry, filled by gymnasium, by installed plugins and by the project's own envs).
Anything that would make a stored spec choose code is refused with `UnsafeEnvSpec`: an id not
registered, an entry point / vector entry point other than the registered one, wrappers other than
the registered ones, env kwargs that are not plain JSON data, and kwargs gym.make_vec reads as its
own settings. The user may opt in to a spec they trust with `allow_foreign_code=True` (the CLI's
--allow-foreign-env); then its entry points and wrappers are used as stored.

`env_spec_to_data` is the inverse: a spec as a plain dict (json types only), for checkpoints loaded
with torch weights_only and for JSON files; from_data(to_data(spec)) == spec for registered specs.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import math
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec, WrapperSpec

OPT_IN = "--allow-foreign-env (allow_foreign_code=True)"

# Keys gym.make_vec takes from a spec's kwargs as its own settings (how many envs, which vectorizer,
# which wrapper callables) or passes on as gym.make's parameters (time limit, env checker): a stored
# spec must not choose them for the caller, nor undo its own checked time limit with them.
RESERVED_KWARGS = ("num_envs", "vectorization_mode", "vector_kwargs", "wrappers", "id", "max_episode_steps",
                   "disable_env_checker")
# Installed packages that register env ids when imported (gymnasium_robotics: pointmaze, antmaze, ...).
# Importing one of THESE is safe; a name taken from the file never is.
ENV_PACKAGES = ("gymnasium_robotics",)
# Fields of specs written by gymnasium < 1.0: harmless booleans that gymnasium 1.x no longer has.
LEGACY_BOOLEAN_FIELDS = ("apply_api_compatibility", "autoreset")
FIELDS = ("id", "entry_point", "reward_threshold", "nondeterministic", "max_episode_steps", "order_enforce",
          "disable_env_checker", "kwargs", "additional_wrappers", "vector_entry_point")


class InvalidEnvSpec(ValueError):
    """A stored environment spec is malformed (not a spec, wrong field types); the message says which field."""


class UnsafeEnvSpec(InvalidEnvSpec):
    """A stored environment spec would choose code to run; refused unless the user opts in."""


def plain_data(value: Any, where: str) -> Any:
    """`value` as plain JSON-type data (None, bool, int, float, str, lists, str-keyed dicts), copied.

    Raises InvalidEnvSpec naming the first non-plain part (a callable, a class, any other object):
    such values are code or pickles, not data. Tuples become lists (JSON has no tuples), numpy
    scalars Python numbers (torch weights_only refuses numpy objects)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":  # numpy scalars: numbers, as data
        return value.item()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidEnvSpec(f"{where} has a non-string key {k!r}; only plain JSON data is accepted")
            out[k] = plain_data(v, f"{where}[{k!r}]")
        return out
    kind = "a callable" if callable(value) else f"a {type(value).__module__}.{type(value).__qualname__}"
    raise InvalidEnvSpec(f"{where} is {kind} ({value!r:.80}), not plain data (numbers, strings, bools, None, lists, dicts)")


def _entry_point_name(entry_point: Any) -> Any:
    """A spec's entry point as stored in JSON: the "module:attr" string, a callable's qualified name, or None."""
    if entry_point is None or isinstance(entry_point, str):
        return entry_point
    return f"{getattr(entry_point, '__module__', '?')}:{getattr(entry_point, '__qualname__', repr(entry_point))}"


def _wrappers_as_data(wrappers: Any, where: str) -> list[dict]:
    if not isinstance(wrappers, (list, tuple)):
        raise InvalidEnvSpec(f"{where}: additional_wrappers must be a list, got {type(wrappers).__name__}")
    out = []
    for i, w in enumerate(wrappers):
        if isinstance(w, WrapperSpec):
            w = {"name": w.name, "entry_point": w.entry_point, "kwargs": w.kwargs}
        if not isinstance(w, Mapping) or set(w) != {"name", "entry_point", "kwargs"}:
            raise InvalidEnvSpec(f"{where}: additional_wrappers[{i}] is not a wrapper spec (name, entry_point, kwargs)")
        out.append({"name": w["name"], "entry_point": _entry_point_name(w["entry_point"]), "kwargs": w["kwargs"]})
    return plain_data(out, f"{where}: additional_wrappers")


def _spec_fields(spec: EnvSpec) -> dict[str, Any]:
    """The spec's fields as EnvSpec.to_json names them, values as they are (kwargs not yet checked)."""
    return {
        "id": spec.id,
        "entry_point": _entry_point_name(spec.entry_point),
        "reward_threshold": spec.reward_threshold,
        "nondeterministic": spec.nondeterministic,
        "max_episode_steps": spec.max_episode_steps,
        "order_enforce": spec.order_enforce,
        "disable_env_checker": spec.disable_env_checker,
        "kwargs": spec.kwargs,
        "additional_wrappers": [{"name": w.name, "entry_point": _entry_point_name(w.entry_point), "kwargs": w.kwargs}
                                for w in spec.additional_wrappers],
        "vector_entry_point": _entry_point_name(spec.vector_entry_point),
    }


def env_spec_to_data(spec: EnvSpec) -> dict[str, Any]:
    """The spec as a plain dict with EnvSpec.to_json's fields; InvalidEnvSpec when its kwargs are not data.

    A callable entry point is stored by its qualified name (it cannot be stored as code; a reader
    rebuilding from the registry takes the registered one anyway)."""
    if not isinstance(spec, EnvSpec):
        raise InvalidEnvSpec(f"expected a gymnasium EnvSpec, got {type(spec).__name__}")
    return plain_data(_spec_fields(spec), f"env spec {spec.id!r}")


def _as_dict(data: str | Mapping | EnvSpec, where: str) -> dict[str, Any]:
    if isinstance(data, EnvSpec):
        return _spec_fields(data)
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise InvalidEnvSpec(f"{where} is not valid JSON ({e})") from None
    if not isinstance(data, Mapping):
        raise InvalidEnvSpec(f"{where} must be a JSON object / dict, got {type(data).__name__}")
    return dict(data)


def _typed(data: dict, key: str, types: tuple, default: Any, where: str, what: str) -> Any:
    value = data.get(key, default)
    if isinstance(value, bool) and bool not in types:  # bool is an int subclass; a time limit of True is a mistake
        raise InvalidEnvSpec(f"{where}: {key} must be {what}, got {value!r}")
    if not isinstance(value, types):
        raise InvalidEnvSpec(f"{where}: {key} must be {what}, got {type(value).__name__} {value!r:.60}")
    return value


def _registered_spec(env_id: str) -> EnvSpec | None:
    """gym.registry[env_id], after importing the installed ENV_PACKAGES once if it is not there yet.

    A dict lookup: gym.spec() would import the module of a "module:Env-v0" id, a name from the file."""
    if env_id not in gym.registry:
        for package in ENV_PACKAGES:
            if package not in _IMPORTED_PACKAGES and importlib.util.find_spec(package) is not None:
                _IMPORTED_PACKAGES.add(package)
                importlib.import_module(package)
    return gym.registry.get(env_id)


_IMPORTED_PACKAGES: set[str] = set()


def _refuse(where: str, what: str, why: str = "it would run code the file names") -> None:
    raise UnsafeEnvSpec(f"{where}: {what}; refused because {why}. If you trust its source, pass {OPT_IN}")


def env_spec_from_data(
    data: str | Mapping[str, Any] | EnvSpec, allow_foreign_code: bool = False, where: str = "stored env spec"
) -> EnvSpec:
    """An EnvSpec rebuilt from stored spec data (EnvSpec.to_json's string, its dict, or an EnvSpec).

    The code (entry points, wrappers) comes from gym.registry[id]; the data (time limit, kwargs,
    booleans) from `data`; missing fields take the registered spec's values. `where` names the
    source in error messages (e.g. "dataset mujoco/hopper/expert-v0"). Raises UnsafeEnvSpec for
    anything that would choose code (unless allow_foreign_code) and InvalidEnvSpec for malformed
    data; both are ValueErrors with a one-line message."""
    if allow_foreign_code and isinstance(data, EnvSpec):
        return copy.deepcopy(data)  # trusted and in-process: keep its callables as they are
    d = _as_dict(data, where)
    unknown = sorted(set(d) - set(FIELDS) - set(LEGACY_BOOLEAN_FIELDS))
    if unknown:
        raise InvalidEnvSpec(f"{where}: unknown field(s) {unknown}; an env spec has {list(FIELDS)}")
    for key in LEGACY_BOOLEAN_FIELDS:
        _typed(d, key, (bool,), False, where, "a bool")
    env_id = d.get("id")
    if not isinstance(env_id, str) or not env_id:
        raise InvalidEnvSpec(f"{where}: id must be a non-empty string, got {env_id!r:.60}")
    where = f"{where} ({env_id})" if env_id not in where else where
    registered = _registered_spec(env_id)

    entry_point = _typed(d, "entry_point", (str, type(None)), None, where, "a 'module:attr' string or None")
    vector_entry_point = _typed(d, "vector_entry_point", (str, type(None)), None, where, "a 'module:attr' string or None")
    try:
        wrappers = _wrappers_as_data(d.get("additional_wrappers", []), where)
    except InvalidEnvSpec as e:
        if allow_foreign_code:
            raise
        _refuse(where, f"additional_wrappers are not data ({e})")
    kwargs = d.get("kwargs", None)
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise InvalidEnvSpec(f"{where}: kwargs must be a dict, got {type(kwargs).__name__}")

    if registered is None:
        if not allow_foreign_code:
            _refuse(where, f"env id {env_id!r} is not registered in Gymnasium (entry point {entry_point!r}; for an "
                    f"env package's id, install the package, e.g. gymnasium-robotics for pointmaze/antmaze)")
        if entry_point is None and vector_entry_point is None:
            raise InvalidEnvSpec(f"{where}: env id {env_id!r} is not registered and the spec names no entry point")
        registered = EnvSpec(env_id, entry_point=entry_point, vector_entry_point=vector_entry_point)
    registered_wrappers = _wrappers_as_data(registered.additional_wrappers, f"registered {env_id}")
    checks = [
        ("entry_point", entry_point, _entry_point_name(registered.entry_point)),
        ("vector_entry_point", vector_entry_point, _entry_point_name(registered.vector_entry_point)),
    ]
    for key, stored, expected in checks:
        if stored is not None and stored != expected and not allow_foreign_code:
            _refuse(where, f"{key} {stored!r} is not the registered {env_id}'s ({expected!r})")
    if wrappers != registered_wrappers and not allow_foreign_code:
        names = [f"{w['name']} ({w['entry_point']})" for w in wrappers]
        _refuse(where, f"additional_wrappers {names} are not the registered {env_id}'s")

    if kwargs is None:
        kwargs = dict(registered.kwargs)
    elif allow_foreign_code:
        kwargs = dict(kwargs)  # trusted: may hold objects an in-process spec carries
    else:
        try:
            kwargs = plain_data(kwargs, f"{where}: kwargs")
        except InvalidEnvSpec as e:  # a callable or object among the env's arguments is code, not data
            _refuse(where, str(e).removeprefix(f"{where}: "), "env arguments must be data")
        reserved = sorted(set(kwargs) & set(RESERVED_KWARGS))
        if reserved:
            _refuse(where, f"kwargs {reserved} are gym.make_vec / gym.make settings (number of envs, vectorizer, "
                    "wrapper callables, time limit), not env arguments", "a stored spec must not choose them")

    max_steps = _typed(d, "max_episode_steps", (int, type(None)), registered.max_episode_steps, where,
                       "a positive int or None")
    if max_steps is not None and max_steps < 1:
        raise InvalidEnvSpec(f"{where}: max_episode_steps must be a positive int or None, got {max_steps}")
    threshold = _typed(d, "reward_threshold", (int, float, type(None)), registered.reward_threshold, where,
                       "a number or None")
    if threshold is not None and not math.isfinite(threshold):
        raise InvalidEnvSpec(f"{where}: reward_threshold must be finite, got {threshold}")
    keep_code = allow_foreign_code
    return EnvSpec(
        id=env_id,
        entry_point=entry_point if keep_code and entry_point is not None else registered.entry_point,
        reward_threshold=threshold,
        nondeterministic=_typed(d, "nondeterministic", (bool,), registered.nondeterministic, where, "a bool"),
        max_episode_steps=max_steps,
        order_enforce=_typed(d, "order_enforce", (bool,), registered.order_enforce, where, "a bool"),
        disable_env_checker=_typed(d, "disable_env_checker", (bool,), registered.disable_env_checker, where, "a bool"),
        kwargs=kwargs,
        additional_wrappers=tuple(WrapperSpec(**w) for w in wrappers) if keep_code else registered.additional_wrappers,
        vector_entry_point=vector_entry_point if keep_code and vector_entry_point is not None
        else registered.vector_entry_point,
    )
