"""The Triton kernels' first-use check (kernels/triton_check.py) and the fallback it drives, on CPU.

The GPU is faked: the backend is told triton is available for a CPU tensor and the fused CPU kernels
are hidden, so "auto" would pick triton; the kernels then run in Triton's interpreter (a working
kernel) or are replaced by ones that compute wrong numbers or fail to compile (a broken one).
"""

import importlib.util
import warnings

import pytest
import torch

from sequence_models.kernels import backend as backend_module
from sequence_models.kernels import cpu as cpu_kernels
from sequence_models.kernels import min_rnn_triton, scan_triton, triton_check
from sequence_models.kernels.backend import get_scan_backend, scan_backend_for, set_scan_backend
from sequence_models.min_rnn import MinGRU
from sequence_models.scan import linear_scan, scan_reference

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
CPU = torch.device("cpu")


@pytest.fixture
def fake_gpu(monkeypatch):
    """auto would run triton on CPU tensors; every check starts afresh; the backend is restored."""
    previous = get_scan_backend()
    monkeypatch.setattr(cpu_kernels, "load", lambda: None)
    monkeypatch.setattr(backend_module, "_triton_available", lambda device: True)
    triton_check.reset_triton_checks()
    set_scan_backend("auto")
    yield
    triton_check.reset_triton_checks()
    set_scan_backend(previous)


def _right_scan(a, b, initial_state=None, reverse=False):
    return scan_reference(a.flip(1), b.flip(1), initial_state).flip(1) if reverse else scan_reference(a, b, initial_state)


def _wrong_scan(a, b, initial_state=None, reverse=False):
    return 1.01 * _right_scan(a, b, initial_state, reverse)


def _failing_compile(*args):
    raise RuntimeError("PTXASError: ptxas fatal: unresolved extern function\nmore compiler output")


@needs_triton
def test_working_kernels_pass_their_check_and_are_used(fake_gpu, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scan_backend_for(CPU, "scan") == "triton"
        with torch.no_grad():  # the first call may come from an evaluation: the check needs autograd anyway
            assert scan_backend_for(CPU, "min_rnn") == "triton"


def test_wrong_values_give_one_warning_and_the_torch_path(fake_gpu, monkeypatch):
    monkeypatch.setattr(scan_triton, "triton_linear_scan", _wrong_scan)
    with pytest.warns(RuntimeWarning, match="Triton scan kernel failed its first-use check.*PyTorch path"):
        assert scan_backend_for(CPU, "scan") == "torch"
    a, b = torch.rand(2, 9, 3), torch.randn(2, 9, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        h = linear_scan(a, b)
    torch.testing.assert_close(h, scan_reference(a, b))


def test_a_compile_failure_falls_back_for_that_kernel_only(fake_gpu, monkeypatch):
    monkeypatch.setattr(min_rnn_triton.TritonMinRNNScan, "apply", _failing_compile)
    monkeypatch.setattr(scan_triton, "triton_linear_scan", _right_scan)  # the minGRU's torch path scans with it
    checked = []
    monkeypatch.setattr(triton_check, "_CHECKS", {**triton_check._CHECKS, "scan": lambda device: checked.append(device)})
    layer = MinGRU(4)
    x = torch.randn(2, 5, 4)
    with pytest.warns(RuntimeWarning, match="min_rnn kernel.*PTXASError"):
        y, _ = layer(x)
    set_scan_backend("torch")
    torch.testing.assert_close(y, layer(x)[0])
    set_scan_backend("auto")
    assert scan_backend_for(CPU, "scan") == "triton" and checked == [CPU]
    assert scan_backend_for(CPU, "scan") == "triton" and checked == [CPU]  # checked once per process


def test_explicit_triton_makes_a_failure_a_one_line_error(fake_gpu, monkeypatch):
    monkeypatch.setattr(min_rnn_triton.TritonMinRNNScan, "apply", _failing_compile)
    set_scan_backend("triton")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(triton_check.TritonKernelBroken, match="use --scan-backend auto or torch") as error:
            scan_backend_for(CPU, "min_rnn")
    assert "\n" not in str(error.value) and "PTXASError" in str(error.value)
    with pytest.raises(triton_check.TritonKernelBroken):  # and every later call too
        scan_backend_for(CPU, "min_rnn")


def test_choosing_the_backend_checks_every_kernel_before_any_work(fake_gpu, monkeypatch):
    checked = []
    monkeypatch.setattr(triton_check, "_CHECKS", {kernel: checked.append for kernel in triton_check.KERNELS})
    assert backend_module.use_scan_backend("triton", CPU) == "triton"
    assert checked == [CPU] * len(triton_check.KERNELS)


def test_unknown_kernel_names_are_refused():
    with pytest.raises(ValueError, match="scan, min_rnn"):
        triton_check.triton_kernel_works("flash", CPU)


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("triton") is None,
                    reason="needs triton and a CUDA GPU")
def test_cuda_kernels_pass_their_first_use_check():
    triton_check.reset_triton_checks()
    device = torch.device("cuda")
    for kernel in triton_check.KERNELS:
        assert triton_check._run_check(kernel, device) is None
