"""TrajectoryStore maths and SegmentSampler batches: shapes, padding, masks, sampling law, determinism."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs.minari_loading import EpisodeArrays
from envs.segment_sampler import SegmentSampler
from envs.trajectory_store import TrajectoryStore, returns_to_go

MAX_EP_LEN = 50


def make_store(lengths, obs_dim=3, act_dim=2, seed=0, metadata=None, env_id="Hopper-v5") -> TrajectoryStore:
    rng = np.random.default_rng(seed)
    n = int(sum(lengths))
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    spec = gym.spec(env_id) if env_id else None
    if spec is not None:
        spec = gym.envs.registration.EnvSpec(spec.id, spec.entry_point, max_episode_steps=MAX_EP_LEN)
    return TrajectoryStore(EpisodeArrays(
        dataset_id="tests/synthetic-v0",
        observations=rng.normal(2.0, 3.0, (n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        rewards=rng.normal(1.0, 2.0, n),
        terminations=np.zeros(n, bool), truncations=np.zeros(n, bool), episode_starts=starts,
        observation_layout=f"Box({obs_dim},)", action_space=gym.spaces.Box(-1, 1, (act_dim,), np.float32),
        env_spec=spec, eval_env_spec=spec, metadata=metadata or {},
    ))


def test_returns_to_go_is_reverse_cumsum_per_episode():
    lengths = [7, 1, 30, 4, 64]
    store = make_store(lengths)
    for e in range(len(lengths)):
        s, end = store.episode_starts[e], store.episode_starts[e + 1]
        expected = np.cumsum(store.rewards[s:end][::-1])[::-1]
        np.testing.assert_allclose(store.returns_to_go[s:end], expected, rtol=1e-12, atol=1e-9)
        assert store.episode_returns[e] == pytest.approx(store.rewards[s:end].sum())
        np.testing.assert_array_equal(store.timesteps[s:end], np.arange(end - s))
    np.testing.assert_allclose(returns_to_go(np.ones(5), np.array([0, 2, 5])), [2, 1, 3, 2, 1])


def test_store_statistics():
    store = make_store([10, 20, 30])
    np.testing.assert_allclose(store.state_mean, store.states.mean(0), rtol=1e-5)
    np.testing.assert_allclose(store.state_std, store.states.std(0) + 1e-6, rtol=1e-5)
    assert (store.obs_dim, store.act_dim, store.num_episodes, store.num_steps) == (3, 2, 3, 60)
    np.testing.assert_array_equal(store.episode_lengths, [10, 20, 30])
    assert store.env_id == "Hopper-v5" and store.max_episode_steps == MAX_EP_LEN
    np.testing.assert_array_equal(store.action_low, [-1, -1])
    summary = store.summary()
    assert "episodes  3, steps 60" in summary and "reference: table Hopper-v5" in summary


def test_batch_shapes_padding_mask_and_values():
    lengths = [3, 8, 60]  # the 60-step episode exceeds MAX_EP_LEN: timesteps must clip
    store = make_store(lengths)
    k, b, scale = 10, 512, 1e-3
    sampler = SegmentSampler(store, context_len=k, batch_size=b, return_scale=scale, seed=1)
    batch = sampler.sample()
    assert batch.states.shape == (b, k, 3) and batch.actions.shape == (b, k, 2)
    assert batch.returns_to_go.shape == (b, k, 1) and batch.timesteps.shape == (b, k) and batch.mask.shape == (b, k)
    assert batch.timesteps.dtype == torch.int64 and batch.mask.dtype == torch.bool
    assert batch.timesteps.max() <= MAX_EP_LEN - 1 and (batch.timesteps == MAX_EP_LEN - 1).any()

    mask = batch.mask.numpy()
    valid = mask.sum(1)
    assert np.all(mask == (np.arange(k)[None] < valid[:, None]))  # right padding: a prefix of valid steps
    assert (valid < k).any() and (valid == k).any()
    for i in range(b):
        e, s, v = int(batch.episode_indices[i]), int(batch.starts[i]), int(valid[i])
        assert v == min(k, lengths[e] - s)
        rows = store.episode_starts[e] + s + np.arange(v)
        np.testing.assert_allclose(batch.states[i, :v], (store.states[rows] - store.state_mean) / store.state_std, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(batch.actions[i, :v], store.actions[rows])
        np.testing.assert_allclose(batch.returns_to_go[i, :v, 0], store.returns_to_go[rows] * scale, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(batch.timesteps[i, :v], np.minimum(s + np.arange(v), MAX_EP_LEN - 1))
        for t in (batch.states, batch.actions, batch.returns_to_go, batch.timesteps):
            assert (t[i, v:] == 0).all()  # padding is zeros


def test_episodes_drawn_in_proportion_to_length():
    lengths = np.array([1, 5, 20, 74])
    sampler = SegmentSampler(make_store(lengths), context_len=4, batch_size=20_000, seed=3)
    batch = sampler.sample()
    counts = np.bincount(batch.episode_indices.numpy(), minlength=4)
    expected = 20_000 * lengths / lengths.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, p = 0.001
    uniform = np.full(4, 5000.0)
    assert ((counts - uniform) ** 2 / uniform).sum() > 1000  # the test tells length-proportional from uniform

    # the start is uniform over the episode's steps
    starts = batch.starts.numpy()[batch.episode_indices.numpy() == 3]
    hist, expected = np.bincount(starts, minlength=74), len(starts) / 74
    assert ((hist - expected) ** 2 / expected).sum() < 116.1  # chi-square, 73 dof, p = 0.001
    assert starts.max() == 73


def test_seeded_reproducible_and_resumable():
    store = make_store([5, 40, 17])
    a, b = SegmentSampler(store, 8, 32, seed=7), SegmentSampler(store, 8, 32, seed=7)
    for _ in range(3):
        x, y = a.sample(), b.sample()
        for name in x.__dict__:
            assert torch.equal(getattr(x, name), getattr(y, name))
    assert not torch.equal(SegmentSampler(store, 8, 32, seed=8).sample().starts, SegmentSampler(store, 8, 32, seed=7).sample().starts)

    state = a.state_dict()
    expected = [a.sample() for _ in range(2)]
    c = SegmentSampler(store, 8, 32, seed=0)
    c.load_state_dict(state)
    for want in expected:
        got = c.sample()
        assert torch.equal(got.episode_indices, want.episode_indices) and torch.equal(got.states, want.states)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_resident_sampling_matches_its_own_seed():
    store = make_store([5, 40, 17])
    a, b = SegmentSampler(store, 8, 32, device="cuda", seed=7), SegmentSampler(store, 8, 32, device="cuda", seed=7)
    x, y = a.sample(), b.sample()
    assert x.states.is_cuda and torch.equal(x.states, y.states) and torch.equal(x.mask, y.mask)


def test_fit_starts_keep_segments_full_and_whole_episodes_when_k_is_long():
    lengths = np.array([3, 10, 40])
    fit = SegmentSampler(make_store(lengths), context_len=8, batch_size=5000, seed=4, segment_start="fit").sample()
    episode, starts = fit.episode_indices.numpy(), fit.starts.numpy()
    valid = fit.mask.sum(1).numpy()
    assert (starts[episode == 0] == 0).all() and (valid[episode == 0] == 3).all()  # shorter than K: whole episode
    assert (valid[episode > 0] == 8).all()  # long enough: always K valid steps
    assert set(starts[episode == 1]) == set(range(3)) and set(starts[episode == 2]) == set(range(33))

    whole = SegmentSampler(make_store(lengths), context_len=40, batch_size=200, seed=4, segment_start="fit").sample()
    assert (whole.starts == 0).all()
    np.testing.assert_array_equal(whole.mask.sum(1).numpy(), lengths[whole.episode_indices.numpy()])
    with pytest.raises(ValueError, match="segment_start"):
        SegmentSampler(make_store(lengths), context_len=4, batch_size=2, segment_start="random")
