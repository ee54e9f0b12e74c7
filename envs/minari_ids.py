"""The Minari MuJoCo dataset ids known offline, so `--help` can list them and a typo in a mujoco/ id
gets a did-you-mean before anything is downloaded.

Minari (>= 0.5) publishes, for each Gymnasium MuJoCo v5 env, datasets named
mujoco/<family>/<quality>-v0. Provenance of this table (checked 2026-12 against the Minari docs and
the farama-minari/mujoco repository on the Hugging Face hub, which lists the families ant,
halfcheetah, hopper, humanoid, inverteddoublependulum, invertedpendulum, pusher, reacher, swimmer,
walker2d):
  confirmed there   ant {simple, medium, expert}; reacher, swimmer {medium, expert}
  not confirmed     the qualities of the other families are Minari's published layout as we know it
                    (the locomotion envs simple/medium/expert, the others medium/expert) and
                    humanoidstandup (SAC policies for it are published, its datasets were not listed):
                    an id missing here is still tried, only a near-miss of a known id is refused.
"""

from __future__ import annotations

import difflib

DEFAULT_DATASET_ID = "builtin/inverteddoublependulum/mixed-v0"
"""what a run trains on when no --dataset is given: a built-in dataset, made locally (envs/builtin_datasets.py)"""

QUALITIES = {
    "ant": ("simple", "medium", "expert"),
    "halfcheetah": ("simple", "medium", "expert"),
    "hopper": ("simple", "medium", "expert"),
    "walker2d": ("simple", "medium", "expert"),
    "humanoid": ("simple", "medium", "expert"),
    "humanoidstandup": ("simple", "medium", "expert"),
    "invertedpendulum": ("medium", "expert"),
    "inverteddoublependulum": ("medium", "expert"),
    "pusher": ("medium", "expert"),
    "reacher": ("medium", "expert"),
    "swimmer": ("medium", "expert"),
}
MINARI_MUJOCO_IDS = tuple(f"mujoco/{family}/{quality}-v0" for family, qualities in QUALITIES.items()
                          for quality in qualities)


def mujoco_family(dataset_id: str) -> str | None:
    """mujoco/ant/medium-v0 -> ant; None for an id outside the mujoco/ namespace."""
    parts = dataset_id.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "mujoco" else None


def known_ids_line() -> str:
    """One line naming the known ids compactly: mujoco/{ant,...}/... grouped by qualities."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for family, qualities in QUALITIES.items():
        groups.setdefault(qualities, []).append(family)
    return "; ".join(f"mujoco/{{{','.join(families)}}}/{{{','.join(q)}}}-v0" for q, families in groups.items())


def mujoco_id_problem(dataset_id: str) -> str | None:
    """A one-line message when dataset_id is a near miss of a known mujoco/ id (a misspelt family or
    quality), else None: ids this table does not know (a new quality or version) are left to Minari."""
    parts = dataset_id.split("/")
    if parts[0] != "mujoco" or dataset_id in MINARI_MUJOCO_IDS:
        return None
    family = parts[1] if len(parts) > 1 else ""
    quality, _, version = (parts[2] if len(parts) > 2 else "").rpartition("-")
    qualities = sorted({q for qs in QUALITIES.values() for q in qs})
    wrong_family = family not in QUALITIES and difflib.get_close_matches(family, QUALITIES, n=1, cutoff=0.7)
    wrong_quality = quality not in qualities and difflib.get_close_matches(quality, qualities, n=1, cutoff=0.7)
    if len(parts) == 3 and not wrong_family and not wrong_quality:
        return None
    guess = f"mujoco/{(wrong_family or [family])[0]}/{(wrong_quality or [quality])[0]}-{version or 'v0'}"
    hint = f" (did you mean {guess!r}?)" if guess in MINARI_MUJOCO_IDS else ""
    return f"dataset {dataset_id!r} is not a known Minari MuJoCo id{hint}; known: {known_ids_line()}"
