"""A first-use check of each Triton kernel against the PyTorch path, on a tiny input.

The Triton kernels are verified in Triton's CPU interpreter by the tests, but a real GPU compiles
them with a different compiler (and driver, and Triton version) than any test machine may have had.
So the first time a process would run a kernel on a device, `triton_kernel_works` runs it once on a
tiny input there and compares values and gradients with the plain PyTorch computation. A compile
failure or a mismatch then costs one warning and the PyTorch path for the rest of the process
(training goes on, slower, with correct numbers), or, when the user asked for the triton backend by
name, one line of error.

Kernels: "scan" (scan_triton.triton_linear_scan, real and complex) and "min_rnn"
(min_rnn_triton.TritonMinRNNScan, minGRU and minLSTM).
"""

from __future__ import annotations

import warnings

import torch

KERNELS = ("scan", "min_rnn")
_TOLERANCE = dict(rtol=1e-4, atol=1e-5)
_results: dict[tuple[str, str], str | None] = {}  # (kernel, device) -> None if it works, else why not


class TritonKernelBroken(ValueError):
    """The triton backend was asked for by name but a kernel failed its first-use check (a ValueError,
    as every other impossible --scan-backend choice: the scripts print it as one line)."""


def reset_triton_checks() -> None:
    """Forget the checks done so far (tests; or after switching devices / Triton versions)."""
    _results.clear()


def _gradients(output: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    weights = torch.linspace(-1, 1, output.numel(), device=output.device).view(output.shape)
    loss = (output * weights).real.sum() if output.is_complex() else (output * weights).sum()
    return list(torch.autograd.grad(loss, leaves))


def _compare(name: str, run_kernel, run_reference, inputs: list[torch.Tensor]) -> None:
    """Values and gradients of run_kernel(*inputs) against run_reference(*inputs); raises on a mismatch."""
    leaves = [t.clone().requires_grad_() for t in inputs]
    reference_leaves = [t.clone().requires_grad_() for t in inputs]
    got = run_kernel(*leaves)
    expected = run_reference(*reference_leaves)
    pairs = [("values", got, expected)]
    pairs += [(f"gradient {i}", g, e) for i, (g, e) in
              enumerate(zip(_gradients(got, leaves), _gradients(expected, reference_leaves)))]
    for what, g, e in pairs:
        if g.shape != e.shape or not torch.allclose(g.detach(), e.detach(), **_TOLERANCE):
            raise ValueError(f"{name}: {what} differ from the PyTorch path")


def _check_scan(device: torch.device) -> None:
    from . import scan_triton
    from ..scan import scan_reference

    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.complex64):
        a = (0.9 * torch.rand(2, 7, 3, generator=g)).to(dtype)
        b, h0 = torch.randn(2, 7, 3, generator=g).to(dtype), torch.randn(2, 3, generator=g).to(dtype)
        inputs = [t.to(device) for t in (a, b, h0)]
        for reverse in (False, True):
            def reference(a, b, h0, reverse=reverse):
                return scan_reference(a.flip(1), b.flip(1), h0).flip(1) if reverse else scan_reference(a, b, h0)

            _compare(f"{dtype} scan{' reversed' if reverse else ''}",
                     lambda a, b, h0, reverse=reverse: scan_triton.triton_linear_scan(a, b, h0, reverse=reverse),
                     reference, inputs)


def _check_min_rnn(device: torch.device) -> None:
    from . import min_rnn_triton
    from ..min_rnn import MinGRU, MinLSTM
    from ..scan import scan_reference

    g = torch.Generator().manual_seed(0)
    for cell, layer in (("mingru", MinGRU(1)), ("minlstm", MinLSTM(1, normalize=True))):
        per_unit = min_rnn_triton.CELLS[cell]
        inputs = [(2 * torch.randn(2, 7, per_unit * 3, generator=g)).to(device), torch.randn(2, 3, generator=g).to(device)]
        _compare(cell,
                 lambda projected, h0, cell=cell: min_rnn_triton.TritonMinRNNScan.apply(projected, h0, cell, True),
                 lambda projected, h0, layer=layer: scan_reference(*layer.coefficients(projected), h0),
                 inputs)


_CHECKS = {"scan": _check_scan, "min_rnn": _check_min_rnn}


def _run_check(kernel: str, device: torch.device) -> str | None:
    """None if the kernel works on device, else a short reason. Runs with autograd on and autocast
    off whatever the caller's context (the first call may come from an evaluation under no_grad)."""
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
            _CHECKS[kernel](device)
        return None
    except Exception as error:  # a compile error, a launch error or a mismatch: all mean "do not use it"
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        return f"{type(error).__name__}: {first_line}"


def _failure(kernel: str, device: torch.device) -> str | None:
    """The check's result for (kernel, device), run once per process; warns once when it fails
    (unless the triton backend was chosen by name: the caller raises then)."""
    key = (kernel, str(device))
    if key not in _results:
        _results[key] = _run_check(kernel, device)
        if _results[key] is not None and not _explicitly_chosen():
            warnings.warn(
                f"the Triton {kernel} kernel failed its first-use check on {device} ({_results[key]}); "
                "using the PyTorch path for the rest of this process (slower, same results)",
                RuntimeWarning,
                stacklevel=4,
            )
    return _results[key]


def _explicitly_chosen() -> bool:
    from .backend import get_scan_backend

    return get_scan_backend() == "triton"


def triton_kernel_works(kernel: str, device: torch.device) -> bool:
    """Whether the Triton `kernel` ("scan" or "min_rnn") may run on `device`: checked once per
    process and device. False after one warning when it fails; raises TritonKernelBroken instead
    when the triton backend was chosen by name."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown Triton kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    reason = _failure(kernel, device)
    if reason is not None and _explicitly_chosen():
        raise TritonKernelBroken(
            f"scan backend 'triton': the Triton {kernel} kernel failed its check on {device} ({reason}); "
            "use --scan-backend auto or torch"
        )
    return reason is None
