"""Stored env specs are data: malicious datasets and spec strings are refused before any code runs."""

import json
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer
from minari.storage import get_dataset_path

from envs.env_specs import OPT_IN, InvalidEnvSpec, UnsafeEnvSpec, env_spec_from_data, env_spec_to_data
from envs.eval_env import eval_env_spec, make_eval_vector_env
from envs.minari_loading import load_episodes, load_minari_dataset
from envs.trajectory_store import TrajectoryStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")
IDP = "InvertedDoublePendulum-v5"
HARMLESS_CALLS: list[str] = []


def harmless_env(**kwargs) -> gym.Env:
    """A foreign entry point of our own: records that it ran, then makes a real env."""
    HARMLESS_CALLS.append("env")
    return gym.make(IDP).unwrapped


class HarmlessWrapper(gym.Wrapper):
    def __init__(self, env):
        HARMLESS_CALLS.append("wrapper")
        super().__init__(env)


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    HARMLESS_CALLS.clear()
    return tmp_path / "minari"


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


def good_spec() -> EnvSpec:
    return EnvSpec(IDP, gym.spec(IDP).entry_point, max_episode_steps=123,
                   kwargs={"reset_noise_scale": 0.2, "healthy_reward": 5.0})


def system_spec(marker: Path) -> dict:
    """The attack: an entry point that runs a shell command when the env is made."""
    return dict(env_spec_to_data(good_spec()), id="Pwn-v0", entry_point="os:system",
                kwargs={"command": f"touch {marker}"})


def write_dataset(dataset_id: str, stored_spec: dict | None, drop_spaces: bool = False) -> None:
    """A small real Minari dataset whose metadata then gets `stored_spec` as env and eval env spec."""
    env = gym.make(IDP)
    obs, _ = env.reset(seed=0)
    observations, actions = [obs], []
    for _ in range(4):
        actions.append(env.action_space.sample())
        observations.append(env.step(actions[-1])[0])
    term, trunc = np.zeros(4, bool), np.zeros(4, bool)
    trunc[-1] = True
    buffer = EpisodeBuffer(observations=np.asarray(observations), actions=np.asarray(actions), rewards=np.ones(4),
                           terminations=term, truncations=trunc, infos={})
    minari.create_dataset_from_buffers(dataset_id, [buffer], env=IDP, eval_env=IDP)
    path = get_dataset_path(dataset_id) / "data" / "metadata.json"
    metadata = json.loads(path.read_text())
    if stored_spec is not None:
        metadata["env_spec"] = metadata["eval_env_spec"] = json.dumps(stored_spec)
    if drop_spaces:  # then minari.load_dataset itself calls gym.make on the stored spec
        del metadata["observation_space"], metadata["action_space"]
    path.write_text(json.dumps(metadata))


def assert_one_line_refusal(err, *names: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and OPT_IN in msg, msg
    for name in names:
        assert name in msg, msg


def malicious_specs(marker: Path) -> dict[str, tuple[dict, str]]:
    good = env_spec_to_data(good_spec())
    return {
        "system": (system_spec(marker), "os:system"),
        "wrapper": (dict(good, additional_wrappers=[
            {"name": "Pwn", "entry_point": "os:system", "kwargs": {"command": f"touch {marker}"}}]), "os:system"),
        "entry_point": (dict(good, entry_point="os:system", kwargs={"command": f"touch {marker}"}), "os:system"),
        "vector_entry_point": (dict(good, vector_entry_point="os:system"), "vector_entry_point"),
    }


@pytest.mark.parametrize("attack", ["system", "wrapper", "entry_point", "vector_entry_point"])
def test_malicious_dataset_is_refused_before_any_code_runs(attack, marker):
    stored, name = malicious_specs(marker)[attack]
    write_dataset("tests/evil-v0", stored)
    write_dataset("tests/evil-nospaces-v0", stored, drop_spaces=True)
    for dataset_id in ("tests/evil-v0", "tests/evil-nospaces-v0"):
        for load in (load_episodes, TrajectoryStore.from_dataset_id, load_minari_dataset, eval_env_spec,
                     lambda d: make_eval_vector_env(d, 2)):
            with pytest.raises(UnsafeEnvSpec) as err:
                load(dataset_id)
            assert_one_line_refusal(err, name, dataset_id)
    assert not marker.exists()


@pytest.mark.parametrize("attack", ["system", "wrapper", "entry_point", "vector_entry_point"])
def test_malicious_spec_string_is_refused(attack, marker):
    stored, name = malicious_specs(marker)[attack]
    for data in (json.dumps(stored), stored):
        with pytest.raises(UnsafeEnvSpec) as err:
            env_spec_from_data(data)
        assert_one_line_refusal(err, name)
        with pytest.raises(UnsafeEnvSpec):
            make_eval_vector_env(stored, 1)
    assert isinstance(err.value, ValueError)
    assert not marker.exists()


def test_non_plain_kwargs_and_make_vec_settings_are_refused():
    good = env_spec_to_data(good_spec())
    with pytest.raises(UnsafeEnvSpec, match=r"kwargs\['cb'\] is a callable") as err:
        env_spec_from_data(dict(good, kwargs={"cb": print}))
    assert_one_line_refusal(err)
    spec = good_spec()
    spec.kwargs = {"nested": {"ok": [1, 2.5, None, "x", True], "bad": object()}}
    with pytest.raises(UnsafeEnvSpec, match=r"kwargs\['nested'\]\['bad'\] is a builtins.object"):
        env_spec_from_data(spec)
    with pytest.raises(UnsafeEnvSpec, match=r"\['num_envs', 'vectorization_mode'\] are gym.make_vec"):
        env_spec_from_data(dict(good, kwargs={"num_envs": 10_000, "vectorization_mode": "async"}))
    with pytest.raises(UnsafeEnvSpec, match=r"\['max_episode_steps'\] are gym.make_vec / gym.make settings"):
        env_spec_from_data(dict(good, kwargs={"max_episode_steps": -1}))  # would undo the checked time limit
    with pytest.raises(UnsafeEnvSpec, match="is not registered"):
        env_spec_from_data({"id": "os:Pwn-v0"})  # a "module:Env" id would make gym.spec import the module
    for bad, message in [
        (dict(good, max_episode_steps="5"), "max_episode_steps must be a positive int"),
        (dict(good, max_episode_steps=True), "max_episode_steps must be a positive int"),
        (dict(good, max_episode_steps=0), "max_episode_steps must be a positive int"),
        (dict(good, order_enforce="yes"), "order_enforce must be a bool"),
        (dict(good, surprise=1), r"unknown field\(s\) \['surprise'\]"),
        (dict(good, kwargs=[1]), "kwargs must be a dict"),
        ("{not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
        ({"max_episode_steps": 3}, "id must be a non-empty string"),
    ]:
        with pytest.raises(InvalidEnvSpec, match=message) as err:
            env_spec_from_data(bad)
        assert "\n" not in str(err.value)


def test_good_spec_round_trips_exactly_and_makes_the_env():
    spec = good_spec()
    data = env_spec_to_data(spec)
    assert json.loads(json.dumps(data)) == data  # plain JSON data
    for stored in (data, json.dumps(data), spec.to_json(), spec):
        rebuilt = env_spec_from_data(stored)
        assert rebuilt == spec and env_spec_to_data(rebuilt) == data
    made = gym.make(env_spec_from_data(data))
    assert made.spec.max_episode_steps == 123 and made.unwrapped._reset_noise_scale == 0.2
    # what gym.make records (the env's own spec) round-trips too, and so does a bare id
    assert env_spec_from_data(made.spec.to_json()) == made.spec
    assert env_spec_from_data({"id": IDP}) == gym.spec(IDP)
    numpy_kwargs = EnvSpec(IDP, gym.spec(IDP).entry_point, kwargs={"reset_noise_scale": np.float32(0.5),
                                                                    "frame_skip": np.int64(5), "camera": (1, 2)})
    assert env_spec_to_data(numpy_kwargs)["kwargs"] == {"reset_noise_scale": 0.5, "frame_skip": 5, "camera": [1, 2]}
    # legacy gymnasium 0.29 fields are harmless booleans
    assert env_spec_from_data(dict(data, apply_api_compatibility=False, autoreset=False)) == spec


def test_good_dataset_loads_with_its_checked_spec():
    write_dataset("tests/good-v0", env_spec_to_data(good_spec()))
    store = TrajectoryStore.from_dataset_id("tests/good-v0")
    assert store.env_spec == good_spec() and store.max_episode_steps == 123
    assert eval_env_spec("tests/good-v0") == good_spec()
    vector_env = make_eval_vector_env("tests/good-v0", 2)
    assert vector_env.num_envs == 2
    vector_env.close()


def test_opt_in_accepts_a_foreign_entry_point_and_wrapper():
    foreign = dict(env_spec_to_data(good_spec()), id="Harmless-v0", entry_point=f"{__name__}:harmless_env",
                   additional_wrappers=[{"name": "HarmlessWrapper", "entry_point": f"{__name__}:HarmlessWrapper",
                                         "kwargs": {}}], kwargs={})
    with pytest.raises(UnsafeEnvSpec):
        env_spec_from_data(foreign)
    write_dataset("tests/foreign-v0", foreign)
    with pytest.raises(UnsafeEnvSpec):
        load_episodes("tests/foreign-v0")
    assert HARMLESS_CALLS == []  # refused: our "foreign" code never ran

    spec = env_spec_from_data(json.dumps(foreign), allow_foreign_code=True)
    assert spec.entry_point == foreign["entry_point"] and spec.additional_wrappers[0].name == "HarmlessWrapper"
    assert env_spec_to_data(spec) == foreign
    store = TrajectoryStore.from_dataset_id("tests/foreign-v0", allow_foreign_code=True)
    assert store.env_spec == spec
    env = make_eval_vector_env("tests/foreign-v0", 1, allow_foreign_code=True)
    env.close()
    assert HARMLESS_CALLS == ["env", "wrapper"]
