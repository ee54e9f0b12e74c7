"""The one training core every task uses (agents, language models, selective copying).

    config       RunConfig, OptimConfig (nested without a flag prefix), parse_config (--preset | --config, then
                 flags), cli, override, to_plain / from_plain (type-checked), ConfigError
    optim        parameter_groups (the one weight-decay rule), lr_factor (warm-up + cosine | step | constant)
    trainer      Trainer: AdamW, schedule, AMP, clip, DDP, the optimizer/RNG state of an exact resume
    loop         run_training(config, task, build_task): run folder, resume checks, the loop (NaN guard,
                 evaluation, checkpoints, Ctrl-C), results.json; the Task protocol a task implements
    run_folder   claim_fresh (NAME, NAME-2, ... atomically), RunFolder (lock, atomic JSON), MetricsLog
    provenance   code_version: the commit a run was trained at (results.json's "code")
    checkpoint   save_checkpoint (atomic, unique temporary), load_checkpoint (weights_only, format version)
    cli          run_cli: one line and an exit code (2 bad input, 1 failure, 130 Ctrl-C)
    distributed  torchrun: Context, collectives that are the identity in one process, DDP wrapping
    rng          every RNG's state, saved and restored as plain tensors
    device       pick_device
"""
