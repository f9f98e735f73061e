"""Training and prediction throughput of the recipes' defaults against the reference scripts.

    python bench/throughput.py --model MODEL_FOLDER --data_dir ../shared/data --steps 60 --rounds 3

All in one run, each measurement in its own process (so peak memory is its own), repeated in
interleaved rounds (ratios are taken within a round; the tables give medians and every round's ratio):
- classification training (--recipe, default sentiment/SST-2), every mode on the same first steps x 32
  training rows for one epoch: the recipe's defaults (dynamic padding, length-grouped batches, bf16 where
  native) against the reference defaults (every sequence padded to 128 tokens, random order, fp32) and
  against the reference's best flags (a plain `transformers.Trainer` with its stock length-grouped sampler
  and collator: dynamic padding, group_by_length, bf16 where native): samples/s, non-pad tokens/s, peak memory;
- NER training on CoNLL-2003: the NER recipe's config (random batches of 32 packed into shared rows, bf16
  where native) against run_ner.py's defaults (a plain Trainer, random batches of 8, fp32): sentences/s
  and labelled words/s;
- prediction, the recipe (`Trainer.predict`, length-sorted batches, dynamic padding) against
  `transformers.pipeline()` batch inference on the same saved model and texts;
- this machine's fp32 and bf16 matrix-multiply peaks, measured here, and the fraction of the one of its
  precision that training reaches on non-pad tokens (6 x parameters + attention FLOPs per token).
Prints the tables and the three ratios (training against the best flags, NER against run_ner.py, prediction
against pipeline()); nothing is asserted.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import (CLASSIFICATION_CONFIGS, DATA_DIR, classification_setup, interleaved_rounds,  # noqa: E402
                           matmul_peak, measure_in_process, median_of, ner_setup, peak_rss_mb, ratio_cell)


BATCH = 32  # the classification runs' batch (the recipe's default)


class SteadyClock:
    """Times the steps after the first few (start-up, allocator warm-up) and counts what they trained on: rows and
    non-pad tokens (classification) or labelled tokens, one per word (NER, where packed rows hold many sentences)."""

    def __init__(self, warmup_steps: int, model, count_labels: bool):
        from transformers import TrainerCallback

        clock = self
        self.steps = self.rows = self.tokens = self.positions = 0
        self.start = self.end = None

        class Callback(TrainerCallback):
            def on_step_end(self, training_args, state, control, **kwargs):
                if state.global_step == warmup_steps:
                    clock.start, clock.steps, clock.rows, clock.tokens, clock.positions = time.perf_counter(), 0, 0, 0, 0
                elif state.global_step > warmup_steps:
                    clock.end, clock.steps = time.perf_counter(), clock.steps + 1

        def count(module, positional, kwargs):
            if module.training:
                if count_labels:
                    clock.tokens += int((kwargs["labels"] != -100).sum())
                else:
                    mask = kwargs["attention_mask"]
                    clock.tokens, clock.positions = clock.tokens + int(mask.sum()), clock.positions + mask.numel()
                    clock.rows += mask.shape[0]

        self.callback = Callback()
        model.register_forward_pre_hook(count, with_kwargs=True)


def phase_train(args, mode: str) -> dict:
    """Classification on the same first steps x 32 training rows, one epoch, in every mode:
    "recipe" (its defaults), "reference" (run_glue.py's defaults: pad to 128, random order, fp32) or "best-flags"
    (a plain Trainer with the best flags a user of the reference scripts can pass: dynamic padding,
    group_by_length, bf16 where native)."""
    from transformers import DataCollatorWithPadding, Trainer

    from common.config.hardware import precision_name
    from common.training.stages import build_trainer

    extra = ["--max_train_samples", str(args.steps * BATCH), "--num_train_epochs", "1",
             "--per_device_train_batch_size", str(BATCH)]
    if mode == "reference":
        extra += ["--pad_to_max_length", "--train_sampling_strategy", "random", "--bf16", "False"]
    if mode == "best-flags":
        extra += ["--train_sampling_strategy", "group_by_length"]
    _, model, tokenizer, tokenized, training_args, _ = classification_setup(args.recipe, args.model, args.data_dir,
                                                                            args.work, extra)
    if mode == "best-flags":  # stock Trainer, stock length-grouped sampler, stock collator
        trainer = Trainer(model=model, args=training_args, train_dataset=tokenized["train"], processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer))
    else:
        trainer = build_trainer(model, training_args, tokenizer, tokenized["train"])
    clock = SteadyClock(args.warmup_steps, model, count_labels=False)
    trainer.add_callback(clock.callback)
    trainer.train()
    elapsed = clock.end - clock.start
    config = model.config
    parameters = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    mean_length = clock.positions / clock.rows
    flops_per_token = 6 * parameters + 6 * 2 * config.num_hidden_layers * config.hidden_size * mean_length
    return {"samples/s": clock.rows / elapsed, "non-pad tokens/s": clock.tokens / elapsed,
            "padding": 1 - clock.tokens / clock.positions, "peak MB": peak_rss_mb(),
            "precision": precision_name(training_args), "flops_per_token": flops_per_token}


def phase_train_ner(args, mode: str) -> dict:
    """CoNLL-2003, `args.steps` steps: "recipe" (its config: random batches of 32 packed into shared rows, bf16
    where native) or "reference" (run_ner.py's defaults: a plain Trainer, random batches of 8 padded to their
    longest, fp32). Sentences/s and labelled words/s (each word's first subword carries its label)."""
    from transformers import DataCollatorForTokenClassification, Trainer

    from common.config.hardware import precision_name
    from common.training.stages import build_trainer

    extra = ["--max_steps", str(args.steps)]
    if mode == "reference":
        extra += ["--per_device_train_batch_size", "8", "--pack_batches", "False", "--bf16", "False"]
    model, tokenizer, train, training_args = ner_setup(args.model, args.data_dir, args.work, extra)
    collator = DataCollatorForTokenClassification(tokenizer)
    if mode == "reference":
        trainer = Trainer(model=model, args=training_args, train_dataset=train, processing_class=tokenizer,
                          data_collator=collator)
    else:
        trainer = build_trainer(model, training_args, tokenizer, train, data_collator=collator)
    clock = SteadyClock(args.warmup_steps, model, count_labels=True)
    trainer.add_callback(clock.callback)
    trainer.train()
    elapsed = clock.end - clock.start
    return {"sentences/s": clock.steps * training_args.train_batch_size / elapsed, "words/s": clock.tokens / elapsed,
            "batch": training_args.train_batch_size, "packed": bool(getattr(trainer, "packs_batches", False)),
            "peak MB": peak_rss_mb(), "precision": precision_name(training_args)}


def phase_predict(args, use_pipeline: bool, pipeline_batch: int = 64) -> dict:
    """The validation texts predicted by the recipe (Trainer.predict, length-sorted batches) or by pipeline()."""
    import torch
    from transformers import pipeline

    import numpy as np

    from common.tokens.tokenization import max_input_length
    from common.training.samplers import token_lengths

    raw, model, tokenizer, tokenized, training_args, data_args = classification_setup(
        args.recipe, args.model, args.data_dir, args.work, [])
    split = "validation"
    texts = raw.splits[split].frame[raw.text_column].tolist()
    lengths = token_lengths(tokenized[split])  # the pipeline tokenizes the same way (truncation, max length)
    batch = pipeline_batch if use_pipeline else training_args.per_device_eval_batch_size
    in_order = lengths if use_pipeline else np.sort(lengths)[::-1]  # the recipe runs length-sorted batches
    positions = sum(in_order[i:i + batch].max() * len(in_order[i:i + batch]) for i in range(0, len(lengths), batch))
    saved = Path(args.work) / "saved"
    if not saved.is_dir():
        model.save_pretrained(saved), tokenizer.save_pretrained(saved)
    if use_pipeline:
        classify = pipeline("text-classification", model=str(saved), device="cpu" if not torch.cuda.is_available() else 0)
        classify(texts[:64], batch_size=pipeline_batch, truncation=True)  # warm-up
        start = time.perf_counter()
        classify(texts, batch_size=pipeline_batch, truncation=True,
                 max_length=max_input_length(tokenizer, model.config, data_args.max_seq_length))  # the recipe's
        elapsed = time.perf_counter() - start
    else:
        from common.training.stages import build_trainer

        trainer = build_trainer(model, training_args, tokenizer)
        trainer.predict(tokenized[split].select(range(64)))  # warm-up
        start = time.perf_counter()
        trainer.predict(tokenized[split])
        elapsed = time.perf_counter() - start
    parameters = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return {"texts/s": len(texts) / elapsed, "peak MB": peak_rss_mb(), "padding": 1 - lengths.sum() / positions,
            "positions": int(positions), "texts": len(texts), "linear GFLOP": 2 * parameters * int(positions) / 1e9}


def run_phase(args, phase: str) -> dict:
    """One phase in its own process (so that its peak memory is its own)."""
    return measure_in_process(__file__, ["--phase", phase, "--recipe", args.recipe, "--model", args.model, "--data_dir",
                                         args.data_dir, "--steps", str(args.steps), "--warmup_steps",
                                         str(args.warmup_steps), "--work", args.work, "--matmul_seconds",
                                         str(args.matmul_seconds)])


def phase_result(args, phase: str) -> dict:
    """One phase's figures, measured in this process."""
    phases = {"train-recipe": lambda: phase_train(args, "recipe"),
              "train-reference": lambda: phase_train(args, "reference"),
              "train-bestflags": lambda: phase_train(args, "best-flags"),
              "predict-recipe": lambda: phase_predict(args, False), "predict-pipeline": lambda: phase_predict(args, True),
              "predict-pipeline-1": lambda: phase_predict(args, True, 1),
              "train-ner-reference": lambda: phase_train_ner(args, "reference"),
              "train-ner-recipe": lambda: phase_train_ner(args, "recipe"),
              "matmul": lambda: {"fp32": matmul_peak("fp32", seconds=args.matmul_seconds),
                                 "bf16": matmul_peak("bf16", seconds=args.matmul_seconds)}}
    return phases[phase]()


ROUND_PHASES = ("matmul", "train-reference", "train-bestflags", "train-recipe", "train-ner-reference", "train-ner-recipe",
                "predict-pipeline", "predict-recipe")


def main():
    """Every phase in interleaved rounds (or one phase, when run as one); the tables and the three ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="sentiment", choices=sorted(CLASSIFICATION_CONFIGS))
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--steps", type=int, default=40, help="training steps per measurement")
    parser.add_argument("--warmup_steps", type=int, default=5, help="first steps, not timed")
    parser.add_argument("--rounds", type=int, default=3, help="times each measurement is repeated, interleaved")
    parser.add_argument("--same_process", action="store_true", help="measure every phase in this process (a quick "
                        "check that the script runs: peak memory and speed are then not each phase's own)")
    parser.add_argument("--matmul_seconds", type=float, default=3.0, help="time spent on each matmul peak")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(phase_result(args, args.phase)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-") as work:  # each recipe right after its reference
        args.work = work
        measure = (lambda phase: phase_result(args, phase)) if args.same_process else (lambda phase: run_phase(args, phase))
        rounds = interleaved_rounds(ROUND_PHASES, measure, args.rounds)
        one_at_a_time = measure("predict-pipeline-1")

    def median(phase, key):
        return median_of(rounds, phase, key)

    def share_of_peak(r, phase):  # against the matmul peak of the precision the run trains in
        peak = r["matmul"]["bf16" if r[phase]["precision"] == "bf16" else "fp32"]
        return r[phase]["non-pad tokens/s"] * r[phase]["flops_per_token"] / 1e9 / peak

    def ratio_line(numerator, denominator, key):
        return ratio_cell(rounds, numerator, denominator, key)

    def peak_line(dtype):
        peaks = [r["matmul"][dtype] for r in rounds]
        return f"{statistics.median(peaks):.0f} GFLOP/s {dtype} (rounds: {', '.join(f'{p:.0f}' for p in peaks)})"

    lines = [f"# Throughput: recipes/{args.recipe} and recipes/ner, model {args.model}, {args.steps} training steps "
             f"per run (the first {args.warmup_steps} not timed), medians of {args.rounds} interleaved rounds",
             f"Matrix-multiply peak measured here (2048 x 2048): {peak_line('fp32')}, {peak_line('bf16')}", "",
             f"## Classification training: the same first {args.steps * BATCH:,} training rows, batch {BATCH}, one epoch",
             "", "| training | precision | samples/s | non-pad tokens/s | padding | peak MB | share of matmul peak |",
             "|---|---|---|---|---|---|---|"]
    for name, phase in (("reference defaults (pad 128, random, fp32)", "train-reference"),
                        ("reference best flags (plain Trainer: dynamic padding, group_by_length, bf16 where native)",
                         "train-bestflags"),
                        ("recipe defaults", "train-recipe")):
        share = statistics.median(share_of_peak(r, phase) for r in rounds)
        lines.append(f"| {name} | {rounds[0][phase]['precision']} | {median(phase, 'samples/s'):.1f} | "
                     f"{median(phase, 'non-pad tokens/s'):.0f} | {median(phase, 'padding'):.0%} | "
                     f"{median(phase, 'peak MB'):.0f} | {share:.1%} |")
    lines += ["", f"recipe / reference defaults, samples/s: {ratio_line('train-recipe', 'train-reference', 'samples/s')}",
              f"recipe / reference best flags, samples/s: {ratio_line('train-recipe', 'train-bestflags', 'samples/s')}; "
              f"non-pad tokens/s: {ratio_line('train-recipe', 'train-bestflags', 'non-pad tokens/s')}", "",
              f"## NER training (CoNLL-2003): {args.steps} steps of random batches", "",
              "| training | precision | batch | packed | sentences/s | labelled words/s | peak MB |",
              "|---|---|---|---|---|---|---|"]
    for name, phase in (("run_ner.py defaults (plain Trainer, batch 8 padded to its longest, fp32)",
                         "train-ner-reference"), ("recipe defaults (conll2003.yaml)", "train-ner-recipe")):
        first = rounds[0][phase]
        lines.append(f"| {name} | {first['precision']} | {first['batch']} | {'yes' if first['packed'] else 'no'} | "
                     f"{median(phase, 'sentences/s'):.1f} | {median(phase, 'words/s'):.0f} | {median(phase, 'peak MB'):.0f} |")
    lines += ["", f"recipe / run_ner.py defaults, sentences/s: "
                  f"{ratio_line('train-ner-recipe', 'train-ner-reference', 'sentences/s')}; labelled words/s: "
                  f"{ratio_line('train-ner-recipe', 'train-ner-reference', 'words/s')}", "",
              "## Prediction: the validation texts", "",
              "| prediction | texts/s | padding | peak MB |", "|---|---|---|---|",
              f"| transformers.pipeline(), one text at a time (its default; one round) | "
              f"{one_at_a_time['texts/s']:.1f} | {one_at_a_time['padding']:.0%} | {one_at_a_time['peak MB']:.0f} |"]
    for name, phase in (("transformers.pipeline(), batch_size=64 (fp32)", "predict-pipeline"),
                        ("recipe (Trainer.predict, batches of 64 sorted by length, bf16 where native)", "predict-recipe")):
        lines.append(f"| {name} | {median(phase, 'texts/s'):.1f} | {median(phase, 'padding'):.0%} | "
                     f"{median(phase, 'peak MB'):.0f} |")
    work_ratio = rounds[0]["predict-pipeline"]["positions"] / rounds[0]["predict-recipe"]["positions"]
    lines += ["", f"recipe / pipeline(batch_size=64), texts/s: {ratio_line('predict-recipe', 'predict-pipeline', 'texts/s')} "
                  f"(the pipeline computes {work_ratio:.2f}x the token positions)"]
    # An upper bound: the recipe's linear layers alone (attention and everything else left out) at the matmul peak
    recipe = rounds[0]["predict-recipe"]
    peak = statistics.median(r["matmul"]["bf16" if rounds[0]["train-recipe"]["precision"] == "bf16" else "fp32"]
                             for r in rounds)
    ceiling = recipe["texts"] / (recipe["linear GFLOP"] / peak)
    lines += [f"ceiling: the recipe's linear layers do {recipe['linear GFLOP']:.0f} GFLOP for these texts; at the "
              f"matmul peak alone that is {ceiling:.0f} texts/s, "
              f"{ceiling / median('predict-pipeline', 'texts/s'):.2f}x the pipeline", "",
              "## The three ratios (goal in brackets)", "",
              f"- training, recipe / reference best flags, samples/s (1.5x): "
              f"{ratio_line('train-recipe', 'train-bestflags', 'samples/s')}",
              f"- NER training, recipe / run_ner.py defaults, sentences/s (3x): "
              f"{ratio_line('train-ner-recipe', 'train-ner-reference', 'sentences/s')}",
              f"- prediction, recipe / pipeline(batch_size=64), texts/s (5x): "
              f"{ratio_line('predict-recipe', 'predict-pipeline', 'texts/s')}"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
