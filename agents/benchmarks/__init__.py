"""Agent benchmarks: evaluation env steps/s, per-step inference latency, training samples/s, long contexts.

    python scripts/benchmark.py --suite agent          # every backbone: evaluation, latency, training
    python scripts/benchmark.py --suite long-context   # training time per timestep at K = 20 ... 1000
    python scripts/benchmark.py --suite peers          # d3rlpy's DecisionTransformer vs ours, same data and size

    evaluation     the DT/CORL one-env loop (an emulation, on our Policy) against our vector-env evaluator
    latency        the model alone: ms per env step for a batch of envs, window vs recurrent
    training       the trainer's samples/s per backbone, timed in turns
    long_context   the trainer's time per timestep at growing K, the same timesteps per batch
    agent          the agent suite: evaluation + latency + training tables and their plot
    peers          the peers suite: d3rlpy's DecisionTransformer and ours in turns, ratios ours / peer
    peer_process   the peer's virtual environment, the aligned episodes handed to it, its subprocess
    peer_d3rlpy    the peer itself: a standalone script run by the peer environment's python
    untrained      the models and trainers under test (the one place that builds them)
    options        the agent suites' flags

Models are the DT paper's size (embed 128, 3 layers, 1 head, dropout 0.1), untrained, every backbone
with its default (bptt) gradient; the sizes are arguments so tests can shrink them. The evaluation and
latency suites step the model through agents.policy.Policy, the evaluator's own, so what is timed is
what evaluation runs; the training suites time agents.trainer.Trainer's train_step.
"""
