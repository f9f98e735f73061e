"""Pretrain a masked language model on plain text, from scratch or continued from a checkpoint.

    python recipes/pretraining/run.py --config recipes/pretraining/configs/zh_corpus.yaml    # small ERNIE, offline
    python recipes/pretraining/run.py --model nghuyong/ernie-3.0-base-zh --train_file my_domain.txt.gz --masking whole_word
    python recipes/pretraining/run.py --model bert-base-uncased --train_file a.txt b.txt.gz --output_dir out/domain

Text files hold one document per line (.txt or .txt.gz); a share of the documents is held out, and
the held-out MLM loss and perplexity are reported at each evaluation. --masking token|whole_word|knowledge
chooses what is masked as a unit (masking.py). With `scratch_model_type`, a new model is built with a
character vocabulary from the corpus. The output folder is an ordinary model folder: every recipe
takes it with --model.
"""

import logging
import math
import sys
from pathlib import Path

from transformers import set_seed

from common.config.arguments import ModelSourceArguments, RecipeTrainingArguments
from common.config.parsing import parse_args
from common.config.process import run_main, setup_logging
from common.models.scratch import ScratchArguments, describe
from common.outputs.all_results import run_facts, write_all_results
from common.outputs.run_report import write_run_report
from common.training.output_dir import RunFolder
from common.training.stages import build_trainer, train_evaluate_predict

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's own modules, wherever it is and however run
from corpus import Corpus, block_datasets, corpus_files, held_out_every, read_documents  # noqa: E402
from masking import MaskEachEpochAnew, UnitMaskingCollator, choose_segmenter  # noqa: E402
from model import check_block_length, set_dropout, tokenizer_and_model  # noqa: E402
from pretraining_arguments import CorpusArguments, MaskingArguments, check_streaming_steps  # noqa: E402

ARGUMENTS = (ModelSourceArguments, ScratchArguments, CorpusArguments, MaskingArguments, RecipeTrainingArguments)
CONFIGS = Path(__file__).parent / "configs"
BENCHMARK_CONFIG = CONFIGS / "zh_corpus.yaml"  # used when the command line names no text
logger = logging.getLogger(__name__)


def main(argv=None):
    """Parse the settings, read the corpus, build the model, pretrain, evaluate, write the model folder."""
    model_args, scratch_args, data_args, masking_args, training_args, settings = parse_args(
        ARGUMENTS, argv, benchmark_config=BENCHMARK_CONFIG, default_config=CONFIGS / "default.yaml",
        rules=[check_streaming_steps])
    setup_logging(training_args)
    # The output folder is this run's alone (locked); an earlier run's files stay until the block ends with ours
    with RunFolder.of(training_args) as run:
        set_seed(training_args.seed)

        # Data: the files checked; the held-out share; the segmenter the text needs (whole_word, knowledge)
        files = corpus_files(data_args)
        every = held_out_every(data_args, files)
        first = files["train"][0]
        documents = read_documents(first, data_args.encoding, data_args.text_column)
        segmenter = choose_segmenter(masking_args, documents, first)

        # Model: a new one with a character vocabulary from the corpus, or a pretrained one with its MLM head; its loss
        # scores the masked positions only (the 85% not masked cost nothing); with --cls_objective, [CLS] has a target
        tokenizer, model = tokenizer_and_model(model_args, scratch_args, data_args, files["train"], every,
                                               masking_args.cls_objective == "bag_of_tokens")
        check_block_length(data_args.max_seq_length, tokenizer, model.config)
        set_dropout(model, masking_args.pretraining_dropout)
        with training_args.main_process_first(desc="tokenization"):
            splits = block_datasets(files, every, data_args, tokenizer, masking_args.masking, segmenter)
        collator = UnitMaskingCollator(tokenizer, mlm_probability=masking_args.mlm_probability, seed=training_args.seed,
                                       needs_units=masking_args.masking != "token")
        if "validation" in splits:  # masked once, so that every evaluation scores the same task
            splits["validation"] = splits["validation"].map(collator.mask_once, batched=True, with_indices=True,
                                                            remove_columns=splits["validation"].column_names)

        # Train and evaluate: the held-out blocks' MLM loss, and its perplexity
        trainer = build_trainer(model, training_args, tokenizer, splits.get("train"), splits.get("validation"),
                                data_collator=collator)
        trainer.add_callback(MaskEachEpochAnew(collator))  # a block's masks: seed, epoch and its tokens (exact resume)
        results, _ = train_evaluate_predict(trainer, splits, run)
        if "eval_loss" in results:
            results["eval_perplexity"] = math.exp(min(results["eval_loss"], 50))

        # Outputs: the model folder (model, tokenizer, model card), all_results.json, curves
        if trainer.is_world_process_zero():
            results.update(run_facts(model_args, data_args, trainer, Corpus(files, splits, every), [],
                                     data_args.max_seq_length),
                           task="mlm", masking=masking_args.masking, cls_objective=masking_args.cls_objective,
                           segmenter=segmenter, vocabulary_size=len(tokenizer),
                           train_tokens_per_second=round(results.get("train_samples_per_second", 0)
                                                         * data_args.max_seq_length, 1),
                           **({"model": describe(scratch_args)} if scratch_args.scratch_model_type else {}))
            write_all_results(training_args.output_dir, results)
            write_run_report(training_args.output_dir, results, settings, trainer.state.log_history, "mlm",
                             recipe="pretraining")


if __name__ == "__main__":
    run_main(main)
