"""Offline-RL data: Minari loading, trajectory store and segment sampler, reference scores, built-in
datasets (scripted controllers, no network), evaluation env construction. Env specs read from a
dataset or a checkpoint are data: rebuilt from the Gymnasium registry, never imported (env_specs).

    dataset_errors       DatasetError and its kinds: InvalidDatasetIdError, DatasetNotFoundError,
                         DatasetDownloadError, DatasetFormatError (one-line messages, for the CLI to print)
    env_specs            env_spec_from_data (registered code only, unless allow_foreign_code), env_spec_to_data,
                         InvalidEnvSpec, UnsafeEnvSpec
    observations         flatten_observation (one obs or a batch; goal Dicts -> concat(observation, desired_goal)),
                         observation_layout, flat_observation_dim
    minari_loading       check_dataset_id, load_minari_dataset, read_stored_env_specs, load_episodes -> EpisodeArrays
    trajectory_store     TrajectoryStore (returns-to-go, state mean/std, normalize -> (scores, reference name))
    dataset_info         DatasetInfo (what evaluation needs; to_plain / from_plain for checkpoints), DatasetInfoError
    segment_sampler      SegmentSampler -> SegmentBatch (K-step segments, right padding + mask)
    reference_scores     find_reference_score (metadata > reference_scores.csv > D4RL v2)
    builtin_datasets     BUILTIN_DATASETS, ensure_builtin_dataset
    scripted_controllers DoublePendulumLQR, ReacherOperationalSpace
    dataset_writing      rollout_episodes, write_minari_dataset (atomic)
    eval_env             eval_env_spec, make_eval_vector_env (both through env_spec_from_data)
    command_args         MakeDatasetArgs, MeasureArgs (db-make-dataset / db-measure-reference-scores; no gymnasium)
"""
