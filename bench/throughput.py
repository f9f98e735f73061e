"""Training and prediction throughput of a recipe's defaults against the reference scripts' defaults.

    python bench/throughput.py --recipe sentiment --model MODEL_FOLDER --data_dir ../shared/data --steps 40 --rounds 3

All in one session, each measurement in its own process (so peak memory is its own), repeated in
interleaved rounds (ratios are taken within a round; the table gives medians):
- training, recipe defaults (dynamic padding, length-grouped batches, bf16 where native) against the
  reference defaults (every sequence padded to 128 tokens, random order, fp32) and against the
  reference's best flags (a plain `transformers.Trainer` with its stock length-grouped sampler and
  collator: dynamic padding, group_by_length, bf16 where native): samples/s, non-pad tokens/s, peak
  memory, and both ratios;
- prediction, the recipe (`Trainer.predict`, length-sorted batches, dynamic padding) against
  `transformers.pipeline()` batch inference on the same saved model and texts;
- this machine's fp32 matrix-multiply peak, measured here, and the fraction of it that training
  reaches on non-pad tokens (6 x parameters + attention FLOPs per token).
Prints a table; nothing is asserted.
"""

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPE_CONFIGS = {"sentiment": "recipes/sentiment/configs/sst2.yaml",
                  "text_classification": "recipes/text_classification/configs/ag_news.yaml"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak(size: int = 2048, seconds: float = 3.0) -> float:
    """fp32 GFLOP/s of a large square matmul, the best of a few timed runs."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best, end = 0.0, time.time() + seconds
    while time.time() < end:
        start = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        best = max(best, 4 * 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def load(args, extra: list[str]):
    from common.config.parsing import parse_args
    from common.data.labels import build_label_list, encode_labels
    from common.data.text import load_text_data
    from common.models.heads import build_classifier
    from common.models.tokenizer import load_tokenizer
    from common.tokens.tokenization import max_input_length, tokenize_splits

    arguments = importlib.import_module(f"recipes.{args.recipe}.run").ARGUMENTS  # the recipe's own, config keys and all
    model_args, data_args, training_args, *_ = parse_args(
        arguments,
        ["--config", str(REPO / RECIPE_CONFIGS[args.recipe]), "--model", args.model, "--data_dir", args.data_dir,
         "--output_dir", args.work, "--report_to", "none", "--disable_tqdm", "True", "--eval_strategy", "no",
         "--save_strategy", "no", "--do_eval", "False", "--load_best_model_at_end", "False", "--logging_strategy", "no",
         *extra])
    raw = load_text_data(data_args, seed=training_args.seed)
    labels = build_label_list(raw)
    encode_labels(raw, labels)
    tokenizer = load_tokenizer(model_args)
    model = build_classifier(model_args, labels, tokenizer)
    max_length = max_input_length(tokenizer, model.config, data_args.max_seq_length)
    tokenized = tokenize_splits(raw, tokenizer, max_length, data_args.pad_to_max_length)
    return raw, model, tokenizer, tokenized, training_args, data_args


def phase_train(args, mode: str) -> dict:
    """mode: "recipe" (its defaults), "reference" (run_glue.py's defaults) or "best-flags" (a plain Trainer with
    the best flags a user of the reference scripts can pass: dynamic padding, group_by_length, bf16 where native)."""
    from transformers import TrainerCallback

    from common.config.hardware import precision_name
    from common.training.stages import build_trainer

    class SteadyClock(TrainerCallback):
        """Times the steps after the first few (start-up, the longest batch first, allocator warm-up)."""

        start = end = None

        def on_step_end(self, training_args, state, control, **kwargs):
            if state.global_step == args.warmup_steps:
                self.start = time.perf_counter()
            self.end = time.perf_counter()

    extra = ["--max_steps", str(args.steps)]
    if mode == "reference":
        extra += ["--pad_to_max_length", "--train_sampling_strategy", "random", "--bf16", "False"]
    if mode == "best-flags":
        extra += ["--train_sampling_strategy", "group_by_length"]
    _, model, tokenizer, tokenized, training_args, _ = load(args, extra)
    clock = SteadyClock()
    if mode == "best-flags":  # stock Trainer, stock length-grouped sampler, stock collator
        from transformers import DataCollatorWithPadding, Trainer

        trainer = Trainer(model=model, args=training_args, train_dataset=tokenized["train"], processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer))
    else:
        trainer = build_trainer(model, training_args, tokenizer, tokenized["train"])
    trainer.add_callback(clock)
    batches = []  # (non-pad tokens, positions) of every batch, in order
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        batches.append((int(batch["attention_mask"].sum()), batch["attention_mask"].numel()))
        return batch

    trainer.data_collator = counting_collator
    trainer.train()
    timed = batches[args.warmup_steps:args.steps]
    elapsed = clock.end - clock.start
    tokens, positions = sum(t for t, _ in timed), sum(p for _, p in timed)
    config = model.config
    parameters = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    mean_length = positions / (len(timed) * training_args.train_batch_size)
    flops_per_token = 6 * parameters + 6 * 2 * config.num_hidden_layers * config.hidden_size * mean_length
    return {"samples/s": len(timed) * training_args.train_batch_size / elapsed, "non-pad tokens/s": tokens / elapsed,
            "padding": 1 - tokens / positions, "peak MB": peak_rss_mb(),
            "precision": precision_name(training_args), "flops_per_token": flops_per_token}


def phase_predict(args, use_pipeline: bool, pipeline_batch: int = 64) -> dict:
    import torch
    from transformers import pipeline

    import numpy as np

    from common.training.samplers import token_lengths

    raw, model, tokenizer, tokenized, training_args, data_args = load(args, [])
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
        classify(texts, batch_size=pipeline_batch, truncation=True, max_length=data_args.max_seq_length)
        elapsed = time.perf_counter() - start
    else:
        from common.training.stages import build_trainer

        trainer = build_trainer(model, training_args, tokenizer)
        trainer.predict(tokenized[split].select(range(64)))  # warm-up
        start = time.perf_counter()
        trainer.predict(tokenized[split])
        elapsed = time.perf_counter() - start
    return {"texts/s": len(texts) / elapsed, "peak MB": peak_rss_mb(), "padding": 1 - lengths.sum() / positions,
            "positions": int(positions)}


def run_phase(args, phase: str) -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--recipe", args.recipe, "--model", args.model,
               "--data_dir", args.data_dir, "--steps", str(args.steps), "--warmup_steps", str(args.warmup_steps),
               "--work", args.work]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        sys.exit(f"bench: phase {phase} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


ROUND_PHASES = ("matmul", "train-reference", "train-bestflags", "train-recipe", "predict-pipeline", "predict-recipe")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="sentiment", choices=sorted(RECIPE_CONFIGS))
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=40, help="training steps per measurement")
    parser.add_argument("--warmup_steps", type=int, default=5, help="first steps, not timed")
    parser.add_argument("--rounds", type=int, default=3, help="times each measurement is repeated, interleaved")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        phases = {"train-recipe": lambda: phase_train(args, "recipe"),
                  "train-reference": lambda: phase_train(args, "reference"),
                  "train-bestflags": lambda: phase_train(args, "best-flags"),
                  "predict-recipe": lambda: phase_predict(args, False), "predict-pipeline": lambda: phase_predict(args, True),
                  "predict-pipeline-1": lambda: phase_predict(args, True, 1),
                  "matmul": lambda: {"GFLOP/s": matmul_peak()}}
        print(json.dumps(phases[args.phase]()))
        return

    # A shared 2-core VM can run a whole phase 40% slower when a neighbour is busy, so every
    # measurement is repeated in rounds (recipe right after its reference) and each ratio is taken
    # within a round; the table gives medians and every round's ratio.
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        args.work = work
        rounds = []
        for number in range(1, args.rounds + 1):
            rounds.append({phase: run_phase(args, phase) for phase in ROUND_PHASES})
            print(f"bench: round {number} of {args.rounds} done", file=sys.stderr)
        one_at_a_time = run_phase(args, "predict-pipeline-1")

    def median(phase, key):
        return statistics.median(r[phase][key] for r in rounds)

    def share_of_peak(r, phase):
        return r[phase]["non-pad tokens/s"] * r[phase]["flops_per_token"] / 1e9 / r["matmul"]["GFLOP/s"]

    def ratio_line(numerator, denominator, key):
        ratios = [r[numerator][key] / r[denominator][key] for r in rounds]
        return f"**{statistics.median(ratios):.2f}x** (rounds: {', '.join(f'{x:.2f}x' for x in ratios)})"

    peaks = [r["matmul"]["GFLOP/s"] for r in rounds]
    lines = [f"# Throughput: recipes/{args.recipe}, model {args.model}, {args.steps} training steps per run "
             f"(the first {args.warmup_steps} not timed), medians of {args.rounds} interleaved rounds",
             f"fp32 matmul peak measured here: {statistics.median(peaks):.1f} GFLOP/s "
             f"(rounds: {', '.join(f'{p:.0f}' for p in peaks)})", "",
             "| training | precision | samples/s | non-pad tokens/s | padding | peak MB | share of matmul peak |",
             "|---|---|---|---|---|---|---|"]
    for name, phase in (("reference defaults (pad 128, random, fp32)", "train-reference"),
                        ("reference best flags (plain Trainer: dynamic padding, group_by_length, bf16 where native)",
                         "train-bestflags"),
                        ("recipe defaults", "train-recipe")):
        share = statistics.median(share_of_peak(r, phase) for r in rounds)
        lines.append(f"| {name} | {rounds[0][phase]['precision']} | {median(phase, 'samples/s'):.1f} | "
                     f"{median(phase, 'non-pad tokens/s'):.0f} | {median(phase, 'padding'):.0%} | "
                     f"{median(phase, 'peak MB'):.0f} | {share:.1%} |")
    lines += ["", f"training throughput ratio (recipe / reference): {ratio_line('train-recipe', 'train-reference', 'samples/s')}",
              f"training throughput ratio (recipe / reference best flags): "
              f"{ratio_line('train-recipe', 'train-bestflags', 'samples/s')}", "",
              "| prediction | texts/s | padding | peak MB |", "|---|---|---|---|",
              f"| transformers.pipeline(), one text at a time (its default; one round) | "
              f"{one_at_a_time['texts/s']:.1f} | {one_at_a_time['padding']:.0%} | {one_at_a_time['peak MB']:.0f} |"]
    for name, phase in (("transformers.pipeline(), batch_size=64", "predict-pipeline"),
                        ("recipe (Trainer.predict, batches of 64 sorted by length)", "predict-recipe")):
        lines.append(f"| {name} | {median(phase, 'texts/s'):.1f} | {median(phase, 'padding'):.0%} | "
                     f"{median(phase, 'peak MB'):.0f} |")
    # Both run the same fp32 model, so without padding the recipe can only save the pipeline's padded positions
    work_ratio = rounds[0]["predict-pipeline"]["positions"] / rounds[0]["predict-recipe"]["positions"]
    lines += ["", f"prediction throughput ratio (recipe / pipeline with batch_size=64): "
                  f"{ratio_line('predict-recipe', 'predict-pipeline', 'texts/s')} "
                  f"(the pipeline computes {work_ratio:.2f}x the token positions)"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
