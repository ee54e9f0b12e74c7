"""Learning check (slow): on the built-in mixed dataset, every backbone trained with the quick preset's
settings scores above the dataset's mean normalized return when asked for the high target.

    python -m pytest -m slow tests/test_agent_learning.py -s      # about 1.5-3 minutes per backbone on 2 CPU cores
"""

from __future__ import annotations

import dataclasses

import pytest

from agents.config import AgentConfig
from agents.run import train_agent
from sequence_models.backbone_configs import BACKBONE_CONFIGS, backbone_config


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONE_CONFIGS))
def test_every_backbone_beats_the_dataset_mean_at_the_high_target(tmp_path, name):
    quick = AgentConfig()
    fields = {f.name: getattr(quick.backbone, f.name) for f in dataclasses.fields(quick.backbone)
              if f.name in ("d_model", "n_layers", "dropout", "mlp_ratio")}
    config = dataclasses.replace(quick, backbone=backbone_config(name, **fields), runs_dir=str(tmp_path), progress=False)
    results = train_agent(config, quiet=True)
    high = results["final"]["targets"][0]
    mean = results["dataset_normalized_mean"]
    print(f"\n{name}: normalized {high['normalized_mean']:.1f} ± {high['normalized_std']:.1f} at target "
          f"{high['target']:g} (dataset mean {mean:.1f}), length {high['length_mean']:.0f}, "
          f"wall {results['wall_time_s']:.0f} s")
    assert high["normalized_mean"] > mean
