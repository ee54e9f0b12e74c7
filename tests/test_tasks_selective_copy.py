import torch

from sequence_models.tasks.selective_copy import NOISE, SelectiveCopy, copy_loss


def _batch(task, n=64, seed=0):
    return task.sample(n, torch.Generator().manual_seed(seed))


def test_layout_positions_order_and_markers():
    task = SelectiveCopy(seq_len=40, n_memorize=5, vocab_size=8)
    inputs, targets = _batch(task)
    L, M = task.seq_len, task.n_memorize
    assert inputs.shape == (64, L + 2 * M) and targets.shape == (64, M)
    assert inputs.dtype == torch.long and targets.dtype == torch.long
    body, tail = inputs[:, : L + M], inputs[:, L + M :]
    # the last M inputs are all the marker, and the marker appears nowhere else
    assert bool((tail == task.marker).all())
    assert not bool((body == task.marker).any())
    # data tokens are never noise or marker
    assert int(targets.min()) >= 1 and int(targets.max()) <= task.vocab_size - 2
    for b in range(inputs.shape[0]):
        data_positions = (body[b] != NOISE).nonzero().flatten()
        # exactly M data positions (data tokens are never 0), and reading them in order gives the target
        assert data_positions.numel() == M
        assert torch.equal(body[b, data_positions], targets[b])
        assert int((body[b] == NOISE).sum()) == L


def test_positions_are_spread_over_the_sequence():
    task = SelectiveCopy(seq_len=200, n_memorize=4, vocab_size=16)
    inputs, _ = _batch(task, n=256)
    hit = (inputs[:, : task.seq_len + task.n_memorize] != NOISE).float().mean(0)
    # uniform placement: every quarter of the body receives data tokens, none is favoured 3x
    quarters = hit.view(4, -1).mean(1)
    assert float(quarters.min()) > 0 and float(quarters.max()) < 3 * float(quarters.min())
    # every data value is used
    assert set(inputs.unique().tolist()) == set(range(task.vocab_size))


def test_seeded_and_fixed_splits():
    task = SelectiveCopy(seq_len=30, n_memorize=4, vocab_size=10)
    a, b = _batch(task, seed=3), _batch(task, seed=3)
    c = _batch(task, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    v1, v2 = task.fixed_set("valid", 32), task.fixed_set("valid", 32)
    t = task.fixed_set("test", 32)
    assert torch.equal(v1[0], v2[0]) and torch.equal(v1[1], v2[1])
    assert not torch.equal(v1[0], t[0])


def test_loss_and_accuracy_only_on_last_m_outputs():
    task = SelectiveCopy(seq_len=20, n_memorize=3, vocab_size=6)
    inputs, targets = _batch(task, n=8)
    T, M, V = task.total_len, task.n_memorize, task.vocab_size
    logits = torch.randn(8, T, V, requires_grad=True)
    loss, acc = copy_loss(logits, targets)
    loss.backward()
    grad_rows = logits.grad.abs().sum(-1).sum(0) > 0
    assert torch.equal(grad_rows, task.output_mask())
    assert int(task.output_mask().sum()) == M
    # perfect logits on the scored positions, garbage elsewhere: accuracy 1
    perfect = torch.full((8, T, V), -10.0)
    perfect[:, -M:].scatter_(-1, targets.unsqueeze(-1), 10.0)
    loss, acc = copy_loss(perfect, targets)
    assert float(acc) == 1.0 and float(loss) < 1e-3
    # wrong on exactly one of the M positions in every row: accuracy (M-1)/M
    wrong = perfect.clone()
    wrong[:, -1] = wrong[:, -1].roll(1, dims=-1)
    _, acc = copy_loss(wrong, targets)
    assert abs(float(acc) - (M - 1) / M) < 1e-6


def test_bad_parameters_raise():
    import pytest

    with pytest.raises(ValueError, match="vocab_size"):
        SelectiveCopy(vocab_size=2)
    with pytest.raises(ValueError, match="split"):
        SelectiveCopy().fixed_set("train", 4)
