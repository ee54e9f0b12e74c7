"""The backbone configs and their registry: what makes the sequence mixer a flag.

Each backbone is a frozen config dataclass (what tyro turns into flags) that knows how to build its
mixer; `BACKBONE_CONFIGS` maps the registry name to the config class; `BackboneChoice` is the same set
as tyro subcommands: `backbone:mingru --backbone.expansion 2`. This module imports no torch (each
`build_mixer` imports its layer), so a command's --help loads only its configs;
sequence_models/backbone.py builds the residual stack from a config.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

import tyro

from .gradient_modes import GRADIENT_MODES, FeedbackInit, FeedbackRangeWarning, GradientMode, check_feedback_options

if TYPE_CHECKING:
    from torch.nn import Module

S4DInit = Literal["lin", "inv"]


@dataclass(frozen=True)
class BackboneConfig:
    d_model: int = 128
    """width of the residual stream"""
    n_layers: int = 3
    """number of residual blocks"""
    dropout: float = 0.1
    """dropout on each block's mixer and MLP outputs (and attention weights)"""
    mlp_ratio: float = 4.0
    """hidden width of each block's MLP, as a multiple of d_model; 0 removes the MLP"""
    gradient: GradientMode = "bptt"
    """how recurrent layers are trained: exact bptt, dsf (diagonal state feedback) or truncated"""
    norm: Literal["layer", "rms"] = "layer"
    """the blocks' pre-norms and the final norm: LayerNorm (GPT-2, DT) or RMSNorm (the minGRU reference's blocks)"""
    conv_kernel: int = 0
    """a causal depthwise convolution of this width before each block's mixer, residual (x + conv(x)), as
    lucidrains' minGRU blocks (3); 0: none"""

    name: ClassVar[str] = ""
    gradient_modes: ClassVar[tuple[str, ...]] = ("bptt",)
    uses_padding_mask: ClassVar[bool] = False
    window_trained_state_drifts: ClassVar[bool] = False
    """measured: trained on windows shorter than an episode, it scores far worse carrying its state over the
    episode (recurrent evaluation) than re-reading the last window (agents/run.py: recurrent_eval_note)"""

    def __post_init__(self) -> None:
        if self.d_model <= 0 or self.n_layers <= 0:
            raise ValueError(f"d_model and n_layers must be positive, got {self.d_model} and {self.n_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mlp_ratio < 0:
            raise ValueError(f"mlp_ratio must be >= 0 (0 = no MLP), got {self.mlp_ratio}")
        if self.conv_kernel < 0:
            raise ValueError(f"conv_kernel must be >= 0 (0 = no convolution), got {self.conv_kernel}")
        if self.gradient not in GRADIENT_MODES:
            raise ValueError(f"unknown gradient mode {self.gradient!r}; valid modes: {', '.join(GRADIENT_MODES)}")
        if self.gradient not in self.gradient_modes:
            others = [n for n, c in BACKBONE_CONFIGS.items() if self.gradient in c.gradient_modes]
            raise ValueError(
                f"backbone {self.name!r} supports gradient modes {list(self.gradient_modes)}, not {self.gradient!r}"
                + (f"; {self.gradient} applies to: {', '.join(others)}" if others else "")
            )

    def build_mixer(self) -> Module:
        raise NotImplementedError


BACKBONE_CONFIGS: dict[str, type[BackboneConfig]] = {}


def register_backbone(config_class: type[BackboneConfig]) -> type[BackboneConfig]:
    BACKBONE_CONFIGS[config_class.name] = config_class
    return config_class


@register_backbone
@dataclass(frozen=True)
class TransformerConfig(BackboneConfig):
    n_heads: int = 1
    """attention heads (d_model must be a multiple)"""

    name: ClassVar[str] = "transformer"
    uses_padding_mask: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_heads <= 0 or self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be a positive multiple of n_heads ({self.n_heads})")

    def build_mixer(self) -> Module:
        from .attention import CausalSelfAttention

        return CausalSelfAttention(self.d_model, self.n_heads, self.dropout)


@dataclass(frozen=True)
class RecurrentConfig(BackboneConfig):
    """A recurrent backbone: trainable by bptt, dsf or truncated (see sequence_models/feedback.py)."""

    feedback_init: FeedbackInit = "linspace"
    """DSF's diagonal A: linspace(low, high) over the state (the paper's 0..1), uniform(low, high) or constant"""
    feedback_low: float = 0.0
    """lowest feedback value (linspace, uniform)"""
    feedback_high: float = 1.0
    """highest feedback value (linspace, uniform)"""
    feedback_constant: float = 0.5
    """every feedback value (constant)"""

    gradient_modes: ClassVar[tuple[str, ...]] = GRADIENT_MODES

    def __post_init__(self) -> None:
        super().__post_init__()
        options = (self.feedback_init, self.feedback_low, self.feedback_high, self.feedback_constant)
        check_feedback_options(*options, warn=self.gradient == "dsf")

    def gradient_options(self) -> dict[str, Any]:
        """The mixer's keyword arguments for its gradient mode."""
        return {
            "gradient": self.gradient,
            "feedback_init": self.feedback_init,
            "feedback_low": self.feedback_low,
            "feedback_high": self.feedback_high,
            "feedback_constant": self.feedback_constant,
        }

    def build_mixer(self) -> Module:
        with warnings.catch_warnings():  # __post_init__ has warned once already; not once per layer
            warnings.simplefilter("ignore", FeedbackRangeWarning)
            return self._build_mixer()

    def _build_mixer(self) -> Module:
        raise NotImplementedError


@register_backbone
@dataclass(frozen=True)
class MinGRUConfig(RecurrentConfig):
    expansion: float = 1.0
    """inner width of the recurrence as a multiple of d_model"""
    learned_init_state: bool = False
    """learn h_0 instead of starting from zeros"""
    scan: Literal["linear", "log"] = "linear"
    """parallel scan: linear (chunked, faster, more accurate in float32) or log (the paper's log-space form)"""

    name: ClassVar[str] = "mingru"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.expansion <= 0:
            raise ValueError(f"expansion must be > 0, got {self.expansion}")

    def _build_mixer(self) -> Module:
        from .min_rnn import MinGRU

        return MinGRU(self.d_model, **self._min_rnn_options())

    def _min_rnn_options(self) -> dict:
        return dict(expansion=self.expansion, learned_init_state=self.learned_init_state, scan=self.scan,
                    **self.gradient_options())


@register_backbone
@dataclass(frozen=True)
class MinLSTMConfig(MinGRUConfig):
    normalize: bool = True
    """divide the forget and input gates by their sum (f' + i' = 1), as in the paper"""

    name: ClassVar[str] = "minlstm"

    def _build_mixer(self) -> Module:
        from .min_rnn import MinLSTM

        return MinLSTM(self.d_model, normalize=self.normalize, **self._min_rnn_options())


@register_backbone
@dataclass(frozen=True)
class LRUConfig(RecurrentConfig):
    state_dim: int | None = None
    """complex state size N (default: d_model)"""
    r_min: float = 0.0
    """smallest initial eigenvalue modulus"""
    r_max: float = 1.0
    """largest initial eigenvalue modulus"""
    max_phase: float = 2 * math.pi
    """largest initial eigenvalue phase"""

    name: ClassVar[str] = "lru"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.r_min <= self.r_max <= 1.0:
            raise ValueError(f"LRU needs 0 <= r_min <= r_max <= 1, got r_min={self.r_min}, r_max={self.r_max}")
        if self.max_phase <= 0:
            raise ValueError(f"max_phase must be > 0, got {self.max_phase}")
        if self.state_dim is not None and self.state_dim <= 0:
            raise ValueError(f"state_dim must be positive, got {self.state_dim}")

    def _build_mixer(self) -> Module:
        from .lru import LRU

        return LRU(self.d_model, self.state_dim, self.r_min, self.r_max, self.max_phase, **self.gradient_options())


@register_backbone
@dataclass(frozen=True)
class GRUConfig(RecurrentConfig):
    hidden: int | None = None
    """hidden size (default d_model); a linear layer projects back to d_model when it differs"""

    name: ClassVar[str] = "gru"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden is not None and self.hidden <= 0:
            raise ValueError(f"hidden must be positive, got {self.hidden}")

    def _build_mixer(self) -> Module:
        from .classic_rnn import GRU

        return GRU(self.d_model, self.hidden, **self.gradient_options())


@register_backbone
@dataclass(frozen=True)
class LSTMConfig(GRUConfig):
    name: ClassVar[str] = "lstm"

    def _build_mixer(self) -> Module:
        from .classic_rnn import LSTM

        return LSTM(self.d_model, self.hidden, **self.gradient_options())


@register_backbone
@dataclass(frozen=True)
class RNNConfig(GRUConfig):
    nonlinearity: Literal["tanh", "relu"] = "tanh"
    """the Elman cell's activation"""

    name: ClassVar[str] = "rnn"

    def _build_mixer(self) -> Module:
        from .classic_rnn import RNN

        return RNN(self.d_model, self.hidden, nonlinearity=self.nonlinearity, **self.gradient_options())


@register_backbone
@dataclass(frozen=True)
class MambaConfig(BackboneConfig):
    """Mamba blocks (Gu & Dao 2023); trained by bptt through the parallel scan only."""

    mlp_ratio: float = 0.0
    """MLP width as a multiple of d_model; 0 (default): the reference stacks Mamba blocks with no MLP (the gated expand-2 block is its channel mixer)"""
    d_state: int = 16
    """SSM states N per inner channel"""
    d_conv: int = 4
    """kernel size of the causal depthwise convolution"""
    expand: float = 2.0
    """inner width E of the block as a multiple of d_model"""
    dt_rank: int | None = None
    """rank of the Δ projection (default: ceil(d_model / 16), as the reference)"""
    dt_min: float = 1e-3
    """smallest initial step Δ"""
    dt_max: float = 1e-1
    """largest initial step Δ"""

    name: ClassVar[str] = "mamba"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_state <= 0 or self.d_conv < 1 or self.expand <= 0:
            raise ValueError(
                f"mamba needs d_state > 0, d_conv >= 1 and expand > 0, got d_state={self.d_state}, "
                f"d_conv={self.d_conv}, expand={self.expand}"
            )
        if self.dt_rank is not None and self.dt_rank <= 0:
            raise ValueError(f"dt_rank must be positive (or unset for ceil(d_model / 16)), got {self.dt_rank}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"mamba needs 0 < dt_min <= dt_max, got dt_min={self.dt_min}, dt_max={self.dt_max}")

    def build_mixer(self) -> Module:
        from .mamba import Mamba

        return Mamba(self.d_model, self.d_state, self.d_conv, self.expand, self.dt_rank, self.dt_min, self.dt_max)


@register_backbone
@dataclass(frozen=True)
class S4DConfig(BackboneConfig):
    """S4D diagonal state-space layers (Gu et al. 2022); trained by bptt through the parallel scan only."""

    mlp_ratio: float = 0.0
    """MLP width as a multiple of d_model; 0 (default): the reference S4D block has none (its GELU + GLU output projection mixes channels)"""
    d_state: int = 64
    """state size N per channel (N/2 complex modes, their conjugates implied), as the reference"""
    init: S4DInit = "lin"
    """initial A: lin (S4D-Lin, A_n = -1/2 + i pi n) or inv (S4D-Inv)"""
    dt_min: float = 1e-3
    """smallest initial step"""
    dt_max: float = 1e-1
    """largest initial step"""

    name: ClassVar[str] = "s4d"
    window_trained_state_drifts: ClassVar[bool] = True  # README, the parity table: 11.7 against 78.5 at K = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_state < 2 or self.d_state % 2:
            raise ValueError(f"s4d needs an even d_state >= 2 (N/2 complex modes), got {self.d_state}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"s4d needs 0 < dt_min <= dt_max, got dt_min={self.dt_min}, dt_max={self.dt_max}")

    def build_mixer(self) -> Module:
        from .s4d import S4D

        return S4D(self.d_model, self.d_state, self.dt_min, self.dt_max, self.init)


def backbone_config(name: str, **overrides: Any) -> BackboneConfig:
    """The config registered under `name`, with field overrides."""
    if name not in BACKBONE_CONFIGS:
        close = difflib.get_close_matches(name, BACKBONE_CONFIGS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown backbone {name!r}{hint}; choose one of: {', '.join(BACKBONE_CONFIGS)}")
    config_class = BACKBONE_CONFIGS[name]
    unknown = set(overrides) - {f.name for f in dataclasses.fields(config_class)}
    if unknown:
        raise ValueError(f"backbone {name!r} has no option(s) {sorted(unknown)}")
    return config_class(**overrides)



def backbone_choice() -> Any:
    """The registered configs as one tyro subcommand type: `backbone:NAME --backbone.FIELD VALUE`."""
    return Union[tuple(Annotated[cls, tyro.conf.subcommand(name)] for name, cls in BACKBONE_CONFIGS.items())]  # noqa: UP007


BackboneChoice = backbone_choice()
