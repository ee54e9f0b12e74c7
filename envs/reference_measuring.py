"""Measuring the reference scores of envs/reference_scores.csv (scripts/measure_reference_scores.py):
the random policy's mean return on each env, and the expert's from a local expert dataset or D4RL's
v2 constant, with the provenance of each number in the table.
"""

from __future__ import annotations

import datetime
import importlib.metadata

import minari

from envs.command_args import MeasureArgs
from envs.reference_scores import (
    D4RL_V2_REFERENCES,
    TABLE_PATH,
    env_family,
    expert_dataset_return,
    measure_random_return,
    read_table,
    write_table,
)


def measure_reference_scores(args: MeasureArgs, command: str) -> None:
    """Measure every env's row, print it, and (write_table) update the shipped table."""
    if len(args.expert_datasets) != len(args.env_ids):
        raise ValueError(f"--expert-datasets needs one id per env id ({len(args.env_ids)}), got {len(args.expert_datasets)}")
    local = minari.list_local_datasets()
    versions = f"gymnasium {importlib.metadata.version('gymnasium')}, mujoco {importlib.metadata.version('mujoco')}"
    today = datetime.date.today().isoformat()
    rows = read_table()
    for env_id, expert_id in zip(args.env_ids, args.expert_datasets):
        returns = measure_random_return(env_id, args.num_episodes, args.seed, progress=True)
        ref_min = float(returns.mean())
        min_source = f"random policy, {args.num_episodes} episodes on {env_id}"
        family = env_family(env_id)
        if expert_id in local:
            ref_max, max_source = expert_dataset_return(expert_id), f"mean return of {expert_id}"
        elif family in D4RL_V2_REFERENCES:
            ref_max, max_source = D4RL_V2_REFERENCES[family][1], f"D4RL v2 expert constant ({expert_id} not local)"
        else:
            raise ValueError(f"no expert return for {env_id}: {expert_id} is not local (`minari download {expert_id}`) "
                             "and D4RL has no constant for it")
        provenance = (
            f"{today}; `{command}`; uniform random actions, "
            f"episode i: env.reset(seed={args.seed}+i), action_space.seed({args.seed}+i), i < {args.num_episodes}; "
            f"return std {returns.std():.3f}, min {returns.min():.3f}, max {returns.max():.3f}; {versions}"
        )
        rows[env_id] = dict(env_id=env_id, ref_min_score=f"{ref_min:.6f}", ref_max_score=f"{ref_max:.6f}",
                            min_source=min_source, max_source=max_source, provenance=provenance)
        print(f"{env_id}: ref_min {ref_min:.3f} ({min_source}), ref_max {ref_max:.3f} ({max_source})")
    if args.write_table:
        write_table(rows)
        print(f"wrote {TABLE_PATH}")
