"""Decision agent: DT tokenisation over any sequence backbone, trainer, vectorised evaluator, checkpoints.

    config       AgentConfig (tyro flags), PRESETS, parse_args, to_plain / from_plain
    model        DecisionModel: tokens, forward (training), window_actions / recurrent_actions (inference)
    trainer      Trainer: AdamW decay groups, warm-up + cosine, clip, AMP, exact-resume state
    evaluator    evaluate -> EvalReport: targets x episodes in one vector env, window or recurrent mode
    checkpoints  dataset_info, build_model, load_agent (weights_only), shape checks
    run          train_agent: the whole run (run folder, logs, checkpoints, evaluation, results.json)
    sweep        plan (checked before anything runs) and launch a grid of runs; finished runs are skipped
    report       run folders -> datasets x methods table (mean ± std over seeds, last / best), CSV, PNG curves
"""
