"""The fused kernels behind the scans the layers call, and the choice between them.

    backend         ScanBackend (auto | cpu | triton | torch), set_scan_backend, use_scan_backend, scan_backend_for
    cpu             the C++ kernels (csrc/scan_cpu.cpp), built on first use, cached by a hash of source/flags/torch
    scan_triton     the generic linear scan on CUDA (Triton)
    min_rnn_triton  minGRU / minLSTM gates and recurrence fused on CUDA (Triton)
    triton_check    the first-use check of each Triton kernel against the PyTorch path
"""
