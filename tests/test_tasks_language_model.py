import pytest
import torch

from sequence_models.backbone_configs import BACKBONE_CONFIGS, backbone_config
from sequence_models.tasks.language_model import LanguageModel, detach_state
from sequence_models.tasks.selective_copy import SelectiveCopy, copy_loss


def _config(name, **extra):
    fields = dict(d_model=16, n_layers=2, dropout=0.0, **extra)
    if name == "transformer":
        fields["n_heads"] = 2
    return backbone_config(name, **fields)


def test_tied_and_untied_output_layer():
    tied = LanguageModel(13, _config("mingru"), tie_weights=True)
    untied = LanguageModel(13, _config("mingru"), tie_weights=False)
    assert tied.tied and tied.output.weight.data_ptr() == tied.token_embedding.weight.data_ptr()
    assert not untied.tied
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(untied) - n(tied) == 13 * 16


def test_position_embedding_only_for_the_transformer_by_default():
    assert LanguageModel(7, _config("transformer")).position_embedding is not None
    for name in ("mingru", "minlstm", "lru"):
        assert LanguageModel(7, _config(name)).position_embedding is None
    assert LanguageModel(7, _config("mingru"), positional_embedding=True).position_embedding is not None
    assert LanguageModel(7, _config("transformer"), positional_embedding=False).position_embedding is None
    model = LanguageModel(7, _config("transformer"), max_len=8)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("name", sorted(BACKBONE_CONFIGS))
def test_chunks_and_steps_match_one_pass(name):
    torch.manual_seed(0)
    model = LanguageModel(11, _config(name), max_len=16).eval()
    tokens = torch.randint(0, 11, (3, 10))
    full, _ = model(tokens)
    assert full.shape == (3, 10, 11)
    first, state = model(tokens[:, :6])
    second, _ = model(tokens[:, 6:], detach_state(state), position=6)
    torch.testing.assert_close(torch.cat([first, second], 1), full, atol=1e-5, rtol=1e-4)
    state, outs = model.init_state(3), []
    for t in range(10):
        logits, state = model.step(tokens[:, t], state, position=t)
        outs.append(logits)
    torch.testing.assert_close(torch.stack(outs, 1), full, atol=1e-5, rtol=1e-4)
    sample = model.generate(tokens[:, :2], 5, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (3, 7) and torch.equal(sample[:, :2], tokens[:, :2])


@pytest.mark.parametrize("name", sorted(BACKBONE_CONFIGS))
def test_a_few_steps_lower_the_loss(name):
    """Every backbone learns a fixed small batch: a memorisation check, 30 Adam steps."""
    torch.manual_seed(0)
    task = SelectiveCopy(seq_len=12, n_memorize=3, vocab_size=6)
    inputs, targets = task.sample(16, torch.Generator().manual_seed(1))
    model = LanguageModel(task.vocab_size, _config(name), tie_weights=False, max_len=task.total_len)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss, _ = copy_loss(model(inputs)[0], targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"


@pytest.mark.parametrize("gradient", ["dsf", "truncated"])
def test_gradient_modes_of_recurrent_backbones(gradient):
    if "gru" not in BACKBONE_CONFIGS:
        pytest.skip("the GRU backbone (gradient modes issue) is not registered yet")
    torch.manual_seed(0)
    model = LanguageModel(9, backbone_config("gru", d_model=16, n_layers=1, dropout=0.0, mlp_ratio=0.0, gradient=gradient))
    tokens = torch.randint(0, 9, (4, 12))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(20):
        logits, _ = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.8 * first


def test_detach_state_keeps_structure():
    from collections import namedtuple

    Pair = namedtuple("Pair", "k v")
    x = torch.ones(2, requires_grad=True) * 2
    state = [Pair(x, x), {"h": x}, None, (x,)]
    out = detach_state(state)
    assert isinstance(out[0], Pair) and not out[0].k.requires_grad
    assert not out[1]["h"].requires_grad and out[2] is None and not out[3][0].requires_grad
