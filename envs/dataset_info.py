"""DatasetInfo: what evaluation needs to know about the dataset an agent was trained on.

It travels inside checkpoints (loaded with torch weights_only) and results files, so it has a plain
form: `to_plain()` gives only JSON types, `from_plain()` checks every field's type and rebuilds the
env spec through envs.env_specs.env_spec_from_data: a checkpoint whose info names foreign code is
refused there (UnsafeEnvSpec) unless the user opts in. Reading the plain form of checkpoints written
before this class (env_spec as a JSON string, no provenance) works too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from gymnasium.envs.registration import EnvSpec

from envs.env_specs import env_spec_from_data, env_spec_to_data
from envs.reference_scores import ReferenceScore

NO_REFERENCE_REASON = "no reference score recorded for this dataset"


class DatasetInfoError(ValueError):
    """A stored dataset info is malformed; the message names the field and what it must be."""


@dataclass(frozen=True)
class DatasetInfo:
    dataset_id: str
    env_id: str | None
    eval_env_spec: EnvSpec | None  # the env to evaluate in (checked: registered code only, unless opted in)
    obs_dim: int
    act_dim: int
    max_episode_steps: int
    return_mean: float  # mean undiscounted episode return in the dataset
    return_max: float
    reference: ReferenceScore | None  # turns returns into normalized scores; None: see reference_missing_reason
    reference_missing_reason: str
    normalized_mean: float | None  # the dataset's mean episode return, normalized (None without a reference)

    @classmethod
    def from_store(cls, store) -> "DatasetInfo":
        """The info of a loaded envs.trajectory_store.TrajectoryStore."""
        reference = store.reference
        returns = store.episode_returns
        return cls(
            dataset_id=store.dataset_id,
            env_id=store.env_id,
            eval_env_spec=store.env_spec,
            obs_dim=int(store.obs_dim),
            act_dim=int(store.act_dim),
            max_episode_steps=int(store.max_episode_steps),
            return_mean=float(returns.mean()),
            return_max=float(returns.max()),
            reference=reference,
            reference_missing_reason=store.reference_missing_reason,
            normalized_mean=None if reference is None else float(reference.normalize(returns).mean()),
        )

    @property
    def reference_with_reason(self) -> tuple[ReferenceScore | None, str]:
        """(the reference, "") or (None, why there is none), for printing next to a score."""
        if self.reference is None:
            return None, self.reference_missing_reason or NO_REFERENCE_REASON
        return self.reference, ""

    def default_targets(self) -> tuple[float, ...]:
        """The dataset's best and mean episode returns (high first: best.pt follows the first target).

        Not "half the best": returns may be negative (Reacher), where half the best is a higher target."""
        def tidy(x: float) -> float:
            return float(round(x)) if abs(x) >= 100 else round(x, 1)

        return (tidy(self.return_max), tidy(self.return_mean))

    def to_plain(self) -> dict[str, Any]:
        """Plain data only (JSON types), for torch weights_only checkpoints and JSON files."""
        ref = self.reference
        return {
            "dataset": self.dataset_id,
            "env_id": self.env_id,
            "env_spec": None if self.eval_env_spec is None else env_spec_to_data(self.eval_env_spec),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "max_episode_steps": self.max_episode_steps,
            "return_mean": self.return_mean,
            "return_max": self.return_max,
            "reference": None if ref is None else {
                "min": float(ref.min_score), "max": float(ref.max_score), "name": ref.name, "provenance": ref.provenance},
            "reference_missing_reason": self.reference_missing_reason,
            "normalized_mean": self.normalized_mean,
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any], allow_foreign_code: bool = False,
                   where: str = "dataset info") -> "DatasetInfo":
        """Rebuild from to_plain()'s dict, checking types; DatasetInfoError / UnsafeEnvSpec (one line) when wrong.

        `where` names the source in messages (e.g. "checkpoint runs/x/checkpoints/last.pt")."""
        if not isinstance(plain, Mapping):
            raise DatasetInfoError(f"{where} must be a dict, got {type(plain).__name__}")
        get = _Fields(plain, where)
        spec_data = get.value("env_spec", (str, Mapping, type(None)), "env spec data (a dict or JSON string) or None", None)
        spec = None if spec_data is None else env_spec_from_data(
            spec_data, allow_foreign_code=allow_foreign_code, where=f"{where}: env_spec")
        ref = get.value("reference", (Mapping, type(None)), "a dict {min, max, name} or None", None)
        reference = None if ref is None else ReferenceScore(
            min_score=_Fields(ref, f"{where}: reference").number("min"),
            max_score=_Fields(ref, f"{where}: reference").number("max"),
            name=_Fields(ref, f"{where}: reference").value("name", (str,), "a string"),
            provenance=_Fields(ref, f"{where}: reference").value("provenance", (str,), "a string", ""),
        )
        normalized = get.value("normalized_mean", (int, float, type(None)), "a number or None", None)
        return cls(
            dataset_id=get.value("dataset", (str,), "a string"),
            env_id=get.value("env_id", (str, type(None)), "a string or None", None),
            eval_env_spec=spec,
            obs_dim=get.positive_int("obs_dim"),
            act_dim=get.positive_int("act_dim"),
            max_episode_steps=get.positive_int("max_episode_steps"),
            return_mean=get.number("return_mean"),
            return_max=get.number("return_max"),
            reference=reference,
            reference_missing_reason=get.value("reference_missing_reason", (str,), "a string", ""),
            normalized_mean=None if normalized is None else float(normalized),
        )


_REQUIRED = object()


class _Fields:
    """Typed reads of one dict's fields, each failure one DatasetInfoError line naming the field."""

    def __init__(self, d: Mapping[str, Any], where: str):
        self.d, self.where = d, where

    def value(self, key: str, types: tuple, what: str, default: Any = _REQUIRED) -> Any:
        if key not in self.d:
            if default is _REQUIRED:
                raise DatasetInfoError(f"{self.where}: '{key}' is missing (it must be {what})")
            return default
        v = self.d[key]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise DatasetInfoError(f"{self.where}: '{key}' must be {what}, got {type(v).__name__} {v!r:.60}")
        return v

    def number(self, key: str) -> float:
        v = float(self.value(key, (int, float), "a number"))
        if not math.isfinite(v):
            raise DatasetInfoError(f"{self.where}: '{key}' must be a finite number, got {v}")
        return v

    def positive_int(self, key: str) -> int:
        v = self.value(key, (int,), "a positive int")
        if v < 1:
            raise DatasetInfoError(f"{self.where}: '{key}' must be a positive int, got {v}")
        return int(v)
