"""Gradient modes for recurrent layers: exact BPTT, Diagonal State Feedbacks (DSF), fully truncated.

For a cell h_t = f(h_{t−1}, x_t), BPTT's backward recurrence is δ_t = e_t + J_{t+1}ᵀ δ_{t+1}
(e_t: the gradient arriving at h_t from outside the recurrence, J the cell's Jacobian in h).
DSF (Caillon et al. 2025) replaces J by a fixed diagonal A:

    δ_t = e_t + A ⊙ δ_{t+1}                         (a reverse linear scan, parallel in time)
    ∂L/∂θ = Σ_t δ_tᵀ ∂f(h_{t−1}, x_t)/∂θ           (h_{t−1} held fixed: one batched cell call)
    ∂L/∂x_t = δ_tᵀ ∂f(h_{t−1}, x_t)/∂x_t

Fully truncated BPTT is A = 0 (δ_t = e_t). The layer computes its exact states however is fastest
(a fused kernel, a parallel scan) without building a graph; `state_feedback` attaches the backward
above to those states. Nothing is kept for the backward but the inputs and the states: the one-step
cell is re-run over all (B·T) pairs inside the backward, so the only graph ever built is one step
deep, and it lives only while the backward runs. What is held from forward to backward shrinks
(GRU: 8× less than BPTT); the peak during the backward does not shrink as much, since that one-step
graph spans every time step at once (`python scripts/benchmark.py --suite gradient-modes` measures both).

A carried-in initial state h_0 receives A ⊙ δ_0, the same feedback every other state gets from its
successor. So a sequence split into chunks, with the state passed on undetached, gets exactly the
gradients of one call; under `truncated` the carried-in state (and a learned h_0) receives none.

Feedback initialisations: `linspace` (low … high across the state, the paper's code with 0 … 1),
`uniform` (independent draws in [low, high]) or `constant`. Values outside [0, 1] warn: |A| ≥ 1
makes δ grow geometrically backwards in time, and negative entries alternate its sign.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from .gradient_modes import FeedbackInit, check_feedback_options, check_gradient_mode
from .scan import linear_scan

Cell = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_feedback(
    state_dim: int,
    init: FeedbackInit = "linspace",
    low: float = 0.0,
    high: float = 1.0,
    constant: float = 0.5,
    generator: torch.Generator | None = None,
    warn: bool = True,
) -> torch.Tensor:
    """The diagonal A of shape (state_dim,), float32."""
    check_feedback_options(init, low, high, constant, warn)
    if init == "linspace":
        return torch.linspace(low, high, state_dim)
    if init == "uniform":
        if generator is not None:
            return torch.empty(state_dim).uniform_(low, high, generator=generator)
        with torch.random.fork_rng(devices=[]):  # the parameters' init must not depend on the gradient mode
            return torch.empty(state_dim).uniform_(low, high)
    return torch.full((state_dim,), float(constant))


def add_gradient_mode(
    module: torch.nn.Module,
    state_dim: int,
    gradient: str,
    feedback_init: str = "linspace",
    feedback_low: float = 0.0,
    feedback_high: float = 1.0,
    feedback_constant: float = 0.5,
) -> None:
    """Set `module.gradient` and, for dsf / truncated, the buffer `module.feedback` (state_dim,).

    The buffer exists only outside bptt (so bptt checkpoints are unchanged), and truncated keeps it
    too (unused), so a checkpoint moves between dsf and truncated freely.
    """
    check_gradient_mode(gradient, type(module).__name__)
    module.gradient = gradient
    if gradient != "bptt":
        options = (feedback_init, feedback_low, feedback_high, feedback_constant)
        module.register_buffer("feedback", make_feedback(state_dim, *options, warn=gradient == "dsf"))


def active_feedback(module: torch.nn.Module) -> torch.Tensor | None:
    """A for dsf, None (A = 0) for truncated."""
    return module.feedback if module.gradient == "dsf" else None


class _StateFeedback(torch.autograd.Function):
    """Identity on the exact states; backward = reverse scan with A, then one batched cell VJP."""

    @staticmethod
    def forward(ctx, cell, x, states, initial_state, feedback, *parameters):
        ctx.cell = cell
        # the parameters themselves, not saved tensors: they are not activations, and the cell
        # reads them from its module, so gradients must be taken with respect to these objects
        ctx.cell_parameters = parameters
        ctx.autocast = [
            (device, torch.get_autocast_dtype(device))
            for device in {x.device.type, states.device.type}
            if torch.is_autocast_enabled(device)
        ]
        ctx.save_for_backward(x, states, initial_state, feedback)
        return states.view_as(states)

    @staticmethod
    @torch.autograd.function.once_differentiable  # the recomputed cell's graph is not kept
    def backward(ctx, grad_states):
        x, states, initial_state, feedback = ctx.saved_tensors
        parameters = ctx.cell_parameters
        if feedback is None:
            delta = grad_states
        else:
            delta = linear_scan(feedback, grad_states, reverse=True).to(grad_states.dtype)

        wanted_x, wanted_h0 = ctx.needs_input_grad[1], ctx.needs_input_grad[3]
        wanted_params = [p for p, wanted in zip(parameters, ctx.needs_input_grad[5:]) if wanted]
        start = torch.zeros_like(states[:, :1]) if initial_state is None else initial_state.unsqueeze(1).to(states)
        previous = torch.cat([start, states[:, :-1]], dim=1).flatten(0, 1)

        grads_x, grads_params = None, []
        if wanted_x or wanted_params:
            with torch.enable_grad(), contextlib.ExitStack() as stack:
                for device, dtype in ctx.autocast:  # as in the forward, like activation checkpointing
                    stack.enter_context(torch.autocast(device_type=device, dtype=dtype))
                x_leaf = x.detach().requires_grad_(wanted_x)
                out = ctx.cell(x_leaf.flatten(0, 1), previous)
                inputs = ([x_leaf] if wanted_x else []) + wanted_params
                grads = torch.autograd.grad(out, inputs, delta.flatten(0, 1).to(out.dtype), allow_unused=True)
            if wanted_x:
                grads_x, grads = grads[0], grads[1:]
            grads_params = list(grads)

        grad_h0 = None
        if wanted_h0 and feedback is not None:
            grad_h0 = (feedback * delta[:, 0]).to(initial_state.dtype)

        it = iter(grads_params)
        grads_out = [next(it) if wanted else None for wanted in ctx.needs_input_grad[5:]]
        return (None, grads_x, None, grad_h0, None, *grads_out)


def state_feedback(
    cell: Cell,
    x: torch.Tensor,
    states: torch.Tensor,
    initial_state: torch.Tensor | None,
    feedback: torch.Tensor | None,
    parameters: Sequence[torch.Tensor],
) -> torch.Tensor:
    """`states` unchanged in value, with the DSF backward attached.

    cell: one step for N independent pairs, cell(x (N, *in), h_prev (N, *state)) -> h (N, *state),
        using `parameters` (the tensors that receive gradients) and nothing else that needs one.
    x: (B, T, *in) the cell's inputs; states: (B, T, *state) the exact states h_1 … h_T, computed
        without a graph; initial_state: (B, *state) or None (zeros).
    feedback: A, broadcasting to one state (e.g. (state_dim,)); None means truncated (A = 0).
    """
    if states.shape[:2] != x.shape[:2]:
        raise ValueError(f"states {tuple(states.shape)} and x {tuple(x.shape)} must share (batch, time)")
    states = states.detach()
    if not torch.is_grad_enabled():
        return states
    return _StateFeedback.apply(cell, x, states, initial_state, feedback, *parameters)
