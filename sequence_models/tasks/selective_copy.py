"""Selective copying (Gu & Dao, Mamba, 2023), as the minGRU paper (Feng et al., 2024) runs it.

One example is `L + M` positions of which `M`, at random sorted positions, hold data tokens and the
rest hold the noise token, followed by `M` marker tokens; the target is the `M` data tokens in order,
read off the outputs at the `M` marker positions. Loss and accuracy count only those outputs.

Token ids follow the reference generator (state-spaces `torch_copying_data`): `vocab_size` is the
whole alphabet, 0 is noise, `vocab_size - 1` is the marker, data tokens are 1 .. vocab_size - 2.
So `vocab_size=16` (the paper's setting) means 14 distinct data tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .copy_config import copy_task_problems

NOISE = 0

# Fixed offsets so that the validation and test sets never depend on the training seed's stream and
# never coincide with each other.
_SPLIT_SEEDS = {"valid": 1_000_003, "test": 2_000_003}


@dataclass(frozen=True)
class SelectiveCopy:
    seq_len: int = 256  # L: noise positions
    n_memorize: int = 16  # M: data tokens to copy
    vocab_size: int = 16  # whole alphabet, noise and marker included

    def __post_init__(self):
        problems = copy_task_problems(self.seq_len, self.n_memorize, self.vocab_size)
        if problems:
            raise ValueError(problems[0])

    @property
    def marker(self) -> int:
        return self.vocab_size - 1

    @property
    def total_len(self) -> int:
        """Input length: L noise + M data positions, then M markers."""
        return self.seq_len + 2 * self.n_memorize

    def output_mask(self, device=None) -> torch.Tensor:
        """(total_len,) bool, True at the M positions whose outputs are scored."""
        mask = torch.zeros(self.total_len, dtype=torch.bool, device=device)
        mask[-self.n_memorize :] = True
        return mask

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws `batch_size` examples on the generator's device.

        Returns inputs (B, L + 2M) and targets (B, M), both int64.
        """
        device = generator.device
        B, L, M = batch_size, self.seq_len, self.n_memorize
        tokens = torch.randint(1, self.vocab_size - 1, (B, M), generator=generator, device=device)
        # M distinct positions among L + M, sorted so that the data keep their order.
        keys = torch.rand(B, L + M, generator=generator, device=device)
        positions = keys.topk(M, dim=-1).indices.sort(dim=-1).values
        body = torch.full((B, L + M), NOISE, dtype=torch.long, device=device)
        body.scatter_(1, positions, tokens)
        markers = torch.full((B, M), self.marker, dtype=torch.long, device=device)
        return torch.cat([body, markers], dim=1), tokens

    def fixed_set(self, split: str, n_examples: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation or test set: the same examples on every machine for a given (L, M, vocab)."""
        if split not in _SPLIT_SEEDS:
            raise ValueError(f"split={split!r}: expected one of {sorted(_SPLIT_SEEDS)}")
        generator = torch.Generator().manual_seed(_SPLIT_SEEDS[split])
        inputs, targets = self.sample(n_examples, generator)
        return inputs.to(device), targets.to(device)


def copy_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and per-token accuracy on the last M outputs only.

    logits (B, T, V) for the whole input, targets (B, M). Returns two scalar tensors (no host sync).
    """
    M = targets.shape[1]
    scored = logits[:, -M:]
    loss = F.cross_entropy(scored.reshape(-1, scored.shape[-1]).float(), targets.reshape(-1))
    accuracy = (scored.argmax(-1) == targets).float().mean()
    return loss, accuracy
