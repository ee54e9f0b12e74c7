"""Layer-level benchmarks: each comparison measured side by side in one run and reported as ratios.

    layers          one layer's fwd+bwd time and memory vs T, every layer and gradient mode, GRU baselines
    gradient_modes  GRU / LSTM (by default): dsf and truncated against bptt
    precision       float32 scan error vs a float64 loop as T grows
    layer_timing    the fwd+bwd rows the layers and gradient-modes suites share
    profiling       how time and activation memory are measured (candidates timed in turns)
    tables          Table, ratios and targets; markdown, CSV and PNG writers (the agent report uses them too)
    machine         the device / versions line every report starts with
    options         the flags every suite shares and the layer-level suites' flags

A suite module has run(args, device) -> list[Table] and plot(tables by name, pyplot) -> figures;
scripts/benchmark.py picks the suite (the agent suites live in agents/benchmarks/).
"""
