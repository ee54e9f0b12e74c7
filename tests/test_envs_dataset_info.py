"""DatasetInfo: plain round trip (weights_only checkpoints, JSON), typed refusals, malicious env specs refused."""

import io
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.registration import EnvSpec

from envs.dataset_info import DatasetInfo, DatasetInfoError
from envs.env_specs import UnsafeEnvSpec, env_spec_to_data
from envs.minari_loading import EpisodeArrays
from envs.reference_scores import ReferenceScore
from envs.trajectory_store import TrajectoryStore

IDP = "InvertedDoublePendulum-v5"


def make_store(rewards_per_episode, metadata=None) -> TrajectoryStore:
    lengths = [len(r) for r in rewards_per_episode]
    n = sum(lengths)
    spec = EnvSpec(IDP, gym.spec(IDP).entry_point, max_episode_steps=321, kwargs={"reset_noise_scale": 0.3})
    return TrajectoryStore(EpisodeArrays(
        dataset_id="tests/info-v0", observations=np.zeros((n, 9), np.float32), actions=np.zeros((n, 1), np.float32),
        rewards=np.concatenate(rewards_per_episode).astype(np.float64), terminations=np.zeros(n, bool),
        truncations=np.zeros(n, bool), episode_starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        observation_layout="Box(9,)", action_space=gym.spaces.Box(-1, 1, (1,), np.float32), env_spec=spec,
        eval_env_spec=spec, metadata=metadata or {},
    ))


def test_from_store_and_plain_round_trip_through_weights_only_and_json():
    store = make_store([np.full(10, 30.0), np.full(4, 2.5)], metadata={"ref_min_score": 0.0, "ref_max_score": 600.0})
    info = DatasetInfo.from_store(store)
    assert (info.dataset_id, info.env_id, info.obs_dim, info.act_dim, info.max_episode_steps) == (
        "tests/info-v0", IDP, 9, 1, 321)
    assert info.eval_env_spec == store.env_spec
    assert (info.return_max, info.return_mean) == (300.0, 155.0)
    assert info.reference.name == "minari metadata of tests/info-v0" and info.normalized_mean == pytest.approx(155 / 6)
    assert info.reference_with_reason == (info.reference, "")
    assert info.default_targets() == (300.0, 155.0)

    plain = info.to_plain()
    buffer = io.BytesIO()
    torch.save({"dataset_info": plain}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["dataset_info"]
    assert DatasetInfo.from_plain(loaded) == info
    assert DatasetInfo.from_plain(json.loads(json.dumps(plain))) == info


def test_no_reference_and_small_returns():
    info = DatasetInfo.from_store(make_store([np.full(3, -1.234), np.full(2, -0.5)]))
    ref, reason = info.reference_with_reason
    assert ref is None and info.normalized_mean is None and reason
    assert info.default_targets() == (-1.0, -2.4)  # best -1.0, mean (-3.702 - 1.0) / 2 rounded to 0.1
    assert DatasetInfo.from_plain(info.to_plain()) == info


def test_old_checkpoint_info_with_a_json_spec_string_still_reads():
    store = make_store([np.ones(5)])
    old = {"dataset": "tests/info-v0", "env_id": IDP, "env_spec": store.env_spec.to_json(), "obs_dim": 9, "act_dim": 1,
           "max_episode_steps": 321, "return_mean": 5.0, "return_max": 5.0,
           "reference": {"min": 0.0, "max": 10.0, "name": "table"}, "reference_missing_reason": "",
           "normalized_mean": 50.0}
    info = DatasetInfo.from_plain(old)
    assert info.eval_env_spec == store.env_spec and info.reference == ReferenceScore(0.0, 10.0, "table")


def test_malicious_env_spec_in_a_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    plain = DatasetInfo.from_store(make_store([np.ones(5)])).to_plain()
    evil = dict(env_spec_to_data(gym.spec(IDP)), id="Pwn-v0", entry_point="os:system",
                kwargs={"command": f"touch {marker}"})
    for stored in (evil, json.dumps(evil)):
        with pytest.raises(UnsafeEnvSpec, match="checkpoint x.pt: env_spec .*--allow-foreign-env") as err:
            DatasetInfo.from_plain(dict(plain, env_spec=stored), where="checkpoint x.pt")
        assert "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("key, value, message", [
    ("obs_dim", "9", "'obs_dim' must be a positive int, got str"),
    ("obs_dim", 0, "'obs_dim' must be a positive int, got 0"),
    ("act_dim", True, "'act_dim' must be a positive int, got bool"),
    ("return_mean", None, "'return_mean' must be a number"),
    ("return_max", float("nan"), "'return_max' must be a finite number"),
    ("dataset", 3, "'dataset' must be a string"),
    ("env_spec", 5, "'env_spec' must be env spec data"),
    ("reference", {"min": 0.0, "name": "x"}, "reference: 'max' is missing"),
    ("reference", "table", "'reference' must be a dict"),
    ("normalized_mean", "high", "'normalized_mean' must be a number or None"),
])
def test_wrong_types_are_refused_with_one_line(key, value, message):
    plain = DatasetInfo.from_store(make_store([np.ones(5)])).to_plain()
    with pytest.raises(DatasetInfoError, match=message) as err:
        DatasetInfo.from_plain(dict(plain, **{key: value}))
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)
    with pytest.raises(DatasetInfoError, match="'obs_dim' is missing"):
        DatasetInfo.from_plain({k: v for k, v in plain.items() if k != "obs_dim"})
    with pytest.raises(DatasetInfoError, match="must be a dict"):
        DatasetInfo.from_plain([plain])
