"""Measure reference scores (0 = random policy, 100 = expert) on the envs' own versions.

The random-policy return (ref_min) is measured here: `num_episodes` episodes, episode i seeded with
seed + i (reset and action space). The expert return (ref_max) is the mean episode return of the
expert dataset of the same env when it is local (`minari download mujoco/hopper/expert-v0`);
otherwise D4RL's v2 expert constant is kept, and the table says so.

    python scripts/measure_reference_scores.py                # measure, print, update envs/reference_scores.csv
    python scripts/measure_reference_scores.py --no-write-table --num-episodes 10
"""

from __future__ import annotations

import os
import sys

from envs.reference_measuring import MeasureArgs, measure_reference_scores
from sequence_models.training.cli import run_cli
from sequence_models.training.config import cli


def main(argv: list[str] | None = None) -> None:
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    measure_reference_scores(cli(MeasureArgs, argv, __doc__), command)


if __name__ == "__main__":
    run_cli(main)
