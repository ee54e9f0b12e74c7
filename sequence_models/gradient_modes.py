"""The names of the gradient modes and DSF's feedback options, and their checks (no torch here: the
configs import this, and a command's --help loads only the configs). sequence_models/feedback.py has
what the modes do.
"""

from __future__ import annotations

import warnings
from typing import Literal

GRADIENT_MODES = ("bptt", "dsf", "truncated")
GradientMode = Literal["bptt", "dsf", "truncated"]
FEEDBACK_INITS = ("linspace", "uniform", "constant")
FeedbackInit = Literal["linspace", "uniform", "constant"]


def check_gradient_mode(mode: str, layer: str) -> None:
    if mode not in GRADIENT_MODES:
        raise ValueError(f"{layer}: unknown gradient mode {mode!r}; valid modes: {', '.join(GRADIENT_MODES)}")


class FeedbackRangeWarning(UserWarning):
    """A DSF feedback A with entries outside [0, 1]."""


def check_feedback_options(init: str, low: float, high: float, constant: float, warn: bool = True) -> None:
    """ValueError for an unknown init or an empty range; a FeedbackRangeWarning when A leaves [0, 1]."""
    if init not in FEEDBACK_INITS:
        raise ValueError(f"unknown feedback_init {init!r}; valid: {', '.join(FEEDBACK_INITS)}")
    if init != "constant" and low > high:
        raise ValueError(f"feedback_low ({low}) must not exceed feedback_high ({high})")
    outside = not 0.0 <= constant <= 1.0 if init == "constant" else (low < 0.0 or high > 1.0)
    if warn and outside:
        values = f"constant {constant}" if init == "constant" else f"range [{low}, {high}]"
        warnings.warn(
            f"feedback {values} is outside [0, 1]: DSF's backward recurrence may diverge "
            "(|A| > 1 grows the gradient geometrically back in time)",
            FeedbackRangeWarning,
            stacklevel=3,
        )
