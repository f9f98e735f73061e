"""Every name below a library's public API that the code relies on, and why (nothing imports this module).

tests/test_trainer_internals.py derives from the source of common/ and recipes/ every `_` name the code
reads from a library (and every private Trainer method RecipeTrainer overrides), fails on one that is
not listed here, and checks that each listed one is still there and still does what we rely on, so
that a library upgrade names what it broke.

Public hooks were preferred wherever a feature allows one: the final save is our own method
(`RecipeTrainer.save_final_model`) rather than an override of `save_model` that tells checkpoints
apart by its `_internal_call` argument; the CRF tagger is a model class built with its CRF
(`crf_tagger_class`), not a forward patched onto an instance; packed batches find their mask kind by a
check on the model rather than by reading `config._attn_implementation`; the config parser lists its
flags from the dataclasses rather than from argparse's `_actions`. What remains has no public
equivalent. One convention of transformers' models is relied on too: a head whose forward calls
`self.loss_function` divides its loss by Trainer's `num_items_in_batch`, and others return their own
mean (`loss_divides_by_item_count`, checked in tests/test_training.py).

One public attribute RecipeTrainer sets for the length of one call, restored in a `finally`: `data_collator`
is the packing collator while the training dataloader is built (evaluation keeps padded batches). The final
save never changes the model (common/training/final_save.py).
"""

# Trainer's: what RecipeTrainer (common/training/trainer.py) overrides, reads or sets, and what for
TRAINER_INTERNALS = {
    "_get_train_sampler": "method get_train_dataloader calls for the training order (overridden: length-grouped)",
    "_get_eval_sampler": "method get_eval_dataloader and get_test_dataloader call for the order (overridden: "
                         "longest first)",
    "loss_is_scaled_for_ga": "attribute training_step reads: True when compute_loss already divides by the "
                             "optimizer step's size",
    "accepts_loss_kwargs": "model attribute Trainer.__init__ reads instead of forward's **kwargs (set False for "
                           "heads that return their own mean)",
    "model_accepts_loss_kwargs": "attribute Trainer.__init__ sets: whether compute_loss passes num_items_in_batch to "
                                 "the model (whose loss then covers a whole optimizer step: TrainingLoss.scaled_for_ga)",
    "current_gradient_accumulation_steps": "attribute the training loop sets to the micro-batches of this optimizer "
                                           "step (the added loss pieces are divided by it when Trainer does not divide)",
    "_save_checkpoint": "method the training loop calls to write checkpoint-N (extended: writes run_loss.json, "
                        "marks the checkpoint complete, then rotates old ones with its save_total_limit)",
    "_total_loss_scalar": "attribute holding the sum of the logged step losses; with `_tr_loss` (the losses since "
                          "the last log) the loss summed over this train() call",
    "_tr_loss": "attribute holding the step losses since the last log (read when a checkpoint is saved)",
    "_set_signature_columns_if_needed": "method that lists the columns Trainer keeps (the model's forward arguments "
                                        "and labels; extended: the training rows' teacher_logits for distillation)",
    "_signature_columns": "attribute that method fills, read by Trainer when it drops the other columns",
    "_get_output_dir": "method giving the folder checkpoint-N goes into (where run_loss.json and the completion "
                       "record are written beside Trainer's files)",
}

# Other libraries': name -> (where, what for)
OTHER_INTERNALS = {
    "_fingerprint": ("datasets.Dataset", "the fingerprint of the rows to tokenize, part of the tokenization cache key "
                                         "(common/tokens/tokenization.py); datasets has no public getter"),
    "_is_avx512_bf16_supported": ("torch.cpu", "whether the CPU runs bf16 natively (common/config/hardware.py): the "
                                               "bf16 default; torch has no public query"),
    "_is_amx_tile_supported": ("torch.cpu", "the same for AMX (common/config/hardware.py)"),
    "_get_model_class": ("transformers.models.auto.auto_factory", "the class an Auto class builds for a config, which "
                         "the CRF tagger (common/models/crf.py) and the masked-positions MLM (recipes/pretraining/"
                         "model.py) subclass, so that they are built as that class rather than swapped in later"),
    "_model_mapping": ("transformers.AutoModelFor...", "each Auto class's config-to-class table, read with "
                                                       "_get_model_class"),
    "_from_config": ("transformers.PreTrainedModel", "the classmethod AutoModel.from_config calls to build a new "
                                                     "model of a class (with its attention and dtype settings)"),
    "_instances": ("tqdm.tqdm", "the progress bars still open when a mistake stops a run, closed before the error line "
                                "so that it is the last one (common/config/process.py); tqdm lists them nowhere else"),
}
