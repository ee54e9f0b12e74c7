"""Decision agent: DT tokenisation over any sequence backbone, on the training core.

    config               AgentConfig (tyro flags; nests the core's RunConfig / OptimConfig), PRESETS, parse_args
    model                DecisionModel: tokens, forward (training), window_actions / recurrent_actions (inference)
    policy               Policy: one batch of episodes' inference state, window or recurrent mode (KV trimming)
    trainer              the agent's loss on the core's Trainer (the run and the benchmarks use it)
    run                  AgentTask (the core loop's task) and train_agent: dataset -> training -> evaluation -> results
    evaluator            evaluate -> EvalReport: targets x episodes in one vector env, stepped by Policy
    checkpoints          build_model, load_agent (weights_only; the env spec rebuilt as data), shape checks
    evaluate_checkpoint  what scripts/evaluate_agent.py does
    sweep                plan (checked before anything runs) and launch a grid of runs; finished runs are skipped
    report               run folders -> datasets x methods table (mean ± std over seeds, last / best), CSV, PNG curves
    benchmarks/          the agent speed suites (evaluation, latency, training, long context)
"""
