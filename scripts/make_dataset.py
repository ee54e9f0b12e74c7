"""Write a Minari dataset locally, no network needed.

    python scripts/make_dataset.py                                                   # the default built-in
    python scripts/make_dataset.py --dataset-id builtin/reacher/expert-v0
    python scripts/make_dataset.py --all-builtin
    python scripts/make_dataset.py --dataset-id local/hopper/random-v0 --env-id Hopper-v5 --num-episodes 100
    python scripts/make_dataset.py --list

Built-in ids (builtin/...) are scripted controllers plus noise (see envs/builtin_datasets.py); any
other id with --env-id records the uniform random policy on that Gymnasium env (no reference scores in
its metadata: scores on it come from envs/reference_scores.csv or D4RL, named as such). Datasets go to the Minari folder (MINARI_DATASETS_PATH, default
~/.minari/datasets); a failed run leaves nothing there.
"""

from __future__ import annotations

from envs.dataset_making import MakeDatasetArgs, make_datasets
from sequence_models.training.cli import run_cli
from sequence_models.training.config import cli


def main(argv: list[str] | None = None) -> None:
    make_datasets(cli(MakeDatasetArgs, argv, __doc__))


if __name__ == "__main__":
    run_cli(main)
