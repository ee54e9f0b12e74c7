"""Offline-RL data: Minari loading, trajectory store and segment sampler, reference scores, built-in
datasets (scripted controllers, no network), evaluation env construction.

    minari_loading       load_minari_dataset, load_episodes -> EpisodeArrays (aligned, flat)
    trajectory_store     TrajectoryStore (returns-to-go, state mean/std, normalize -> (scores, reference name))
    segment_sampler      SegmentSampler -> SegmentBatch (K-step segments, right padding + mask)
    reference_scores     find_reference_score (metadata > reference_scores.csv > D4RL v2)
    builtin_datasets     BUILTIN_DATASETS, DEFAULT_DATASET_ID, ensure_builtin_dataset
    scripted_controllers DoublePendulumLQR, ReacherOperationalSpace
    dataset_writing      rollout_episodes, write_minari_dataset (atomic)
    eval_env             make_eval_env, make_eval_vector_env
"""
