"""The papers' sequence benchmarks, each a task on the training core.

    lm_training     LMConfig, PRESETS, LMTask, run: language modelling (window or stream batching)
    copy_training   CopyConfig, PRESETS, CopyTask, run: selective copying
    text            corpora (download, checksums, tokenising) and their batching
    language_model  LanguageModel: token embedding -> any backbone -> logits; generate
    selective_copy  the selective-copying task's data and loss
"""
