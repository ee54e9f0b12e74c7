"""Selective copying (Mamba; the minGRU paper's setting) with any backbone, on the training core.

Every training batch is freshly drawn (selective_copy.py); validation and test sets are fixed per
(L, M, vocab). best.pt follows the validation accuracy. Data parallel (torchrun): every rank draws
the global batch from the shared generator and keeps its rows, as one process at the global batch
would draw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..training.device import amp_enabled, autocast
from ..training.loop import Evaluation, Setup, run_training
from .copy_config import SCRIPT, CopyConfig
from .language_model import POSITIONAL_EMBEDDING, LanguageModel
from .selective_copy import SelectiveCopy, copy_loss


class CopyTask:
    """Selective copying as a training-core task (sequence_models.training.loop.Task)."""

    resumable_fields = CopyConfig.RESUMABLE

    def __init__(self, config: CopyConfig, setup: Setup):
        self.config, self.ctx = config, setup.ctx
        device = setup.device
        self.task = SelectiveCopy(config.seq_len, config.n_memorize, config.vocab_size)
        self.valid = self.task.fixed_set("valid", config.eval_examples, device)
        self.model = LanguageModel(config.vocab_size, config.backbone, tie_weights=config.tie_weights,
                                   positional_embedding=POSITIONAL_EMBEDDING[config.positional_embedding],
                                   max_len=self.task.total_len).to(device)
        self.generator = torch.Generator(device=device).manual_seed(config.run.seed)
        self.use_amp = amp_enabled(config.run.amp, device)
        self.total_steps, self.steps_per_epoch, self.samples_per_step = config.steps, None, config.batch_size

    def loss(self, net) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        B, rank = self.config.batch_size, self.ctx.rank
        inputs, targets = self.task.sample(B * self.ctx.world_size, self.generator)
        logits, _ = net(inputs[rank * B:(rank + 1) * B])
        loss, accuracy = copy_loss(logits, targets[rank * B:(rank + 1) * B])
        return loss, {"accuracy": accuracy}

    @torch.inference_mode()
    def _score(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        """(mean loss, mean per-token accuracy) over a fixed set."""
        was_training = self.model.training
        self.model.eval()
        total_loss = total_accuracy = 0.0
        B = self.config.batch_size
        for i in range(0, inputs.shape[0], B):
            x, y = inputs[i:i + B], targets[i:i + B]
            with autocast(x.device, self.use_amp):
                logits, _ = self.model(x)
            loss, accuracy = copy_loss(logits, y)
            total_loss += loss.item() * x.shape[0]
            total_accuracy += accuracy.item() * x.shape[0]
        self.model.train(was_training)
        return total_loss / inputs.shape[0], total_accuracy / inputs.shape[0]

    def evaluate(self, step: int, final: bool) -> Evaluation:
        loss, accuracy = self._score(*self.valid)
        return Evaluation({"valid/loss": loss, "valid/accuracy": accuracy}, accuracy,
                          {"valid_loss": loss, "valid_accuracy": accuracy},
                          [f"valid accuracy {100 * accuracy:.1f} %, loss {loss:.4f}"])

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())

    def checkpoint_extras(self) -> dict[str, Any]:
        return {}

    def check_checkpoint(self, payload: dict[str, Any], path: Path) -> None:
        pass  # the config check covers everything that shapes the model and the data

    def describe(self) -> str:
        n_params = sum(p.numel() for p in self.model.parameters())
        return (f"{self.config.backbone.name}, {n_params:,} parameters, L={self.config.seq_len} "
                f"M={self.config.n_memorize}, {self.total_steps} steps on {self.ctx.device}")

    def results(self, final: Evaluation, best: dict[str, Any]) -> dict[str, Any]:
        test_loss, test_accuracy = self._score(*self.task.fixed_set("test", self.config.test_examples, self.ctx.device))
        config = self.config
        return {"backbone": config.backbone.name, "gradient": config.backbone.gradient,
                "n_layers": config.backbone.n_layers, "parameters": sum(p.numel() for p in self.model.parameters()),
                "seq_len": config.seq_len, "n_memorize": config.n_memorize,
                "valid_accuracy": final.summary["valid_accuracy"], "valid_loss": final.summary["valid_loss"],
                "best_valid_accuracy": best["score"], "test_accuracy": test_accuracy, "test_loss": test_loss}

    def final_lines(self, final: Evaluation, results: dict[str, Any]) -> list[str]:
        c = self.config
        return ["\n| run | backbone | layers | params | L | M | steps | valid acc | test acc | test loss |",
                "|---|---|---|---|---|---|---|---|---|---|",
                f"| {results['run']} | {c.backbone.name} | {c.backbone.n_layers} | {results['parameters']:,} | {c.seq_len} | "
                f"{c.n_memorize} | {results['steps']} | {100 * results['valid_accuracy']:.1f} % | "
                f"{100 * results['test_accuracy']:.1f} % | {results['test_loss']:.4f} |"]


def run(config: CopyConfig, quiet: bool = False) -> dict[str, Any]:
    """Train and evaluate; returns what results.json holds."""
    return run_training(config, "copy", lambda setup: CopyTask(config, setup), SCRIPT, quiet=quiet)
