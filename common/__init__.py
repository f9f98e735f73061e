"""What two recipes would otherwise both write, one sub-package per job:

    data/        readers, checks and splits for labelled text and tagged sentences; label sets; benchmarks
    config/      the argument dataclasses, config file + command line, logging, hardware and precision
    tokens/      texts to model inputs (cached); word labels on subwords, windows over long inputs
    models/      the tokenizer, and the pretrained model with its task head
    evaluation/  decisions and scores through `evaluate` (metric modules shipped, offline)
    training/    RecipeTrainer, batch order and packing, the train/evaluate/predict stages
    outputs/     all_results.json, predictions, run_config.yaml, plots, model card; the cross-run table

A package imports only from its own modules and from the packages listed above it (`common.explain`, the
command, from all of them). import-linter checks it, imports inside functions included: the contract is in
pyproject.toml, and tests/test_code_rules.py runs it.
"""
