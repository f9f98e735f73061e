"""Where a training step and a prediction batch spend their time: by stage and by operator (torch.profiler).

    python bench/profile_step.py --model MODEL_FOLDER [--recipe sentiment] [--steps 20]

Builds the recipe's trainer with the recipe's own set-up calls (bench/harness.py), then runs its training
batches by hand the way Trainer does (bf16 autocast where Trainer would use it, RecipeTrainer.compute_loss,
backward, gradient clipping, AdamW, scheduler), timing each stage after a few warm-up steps; then profiles a
few steps and one prediction batch with torch.profiler and prints the operators with the most self CPU time.
Nothing is asserted; the write-up is in docs/benchmarks.md.
"""

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, autocast_for, classification_setup, print_table, step_trainer, training_step  # noqa: E402

STAGES = ("data (sampler + collator)", "forward + loss", "backward", "clip + optimizer step", "scheduler + zero_grad")


def main():
    """Stage times of the recipe's training step, then the operators of a few steps and of a prediction batch."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--recipe", default="sentiment")
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--predict_batch", type=int, default=64)
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as work:
        _, model, tokenizer, tokenized, training_args, _ = classification_setup(
            args.recipe, args.model, args.data_dir, work, ["--max_steps", str(args.steps)])
        trainer = step_trainer(model, training_args, tokenizer, tokenized["train"])
        trainer.create_optimizer_and_scheduler(num_training_steps=args.steps + args.warmup + 3)
        batches = iter(trainer.get_train_dataloader())
        model.train()
        stages = defaultdict(float)

        def step(timed: bool):
            marks = [time.perf_counter()]
            batch = next(batches)
            marks.append(time.perf_counter())
            training_step(trainer, batch, marks=marks)
            if timed:
                for name, start, end in zip(STAGES, marks, marks[1:]):
                    stages[name] += end - start

        for _ in range(args.warmup):
            step(False)
        for _ in range(args.steps):
            step(True)
        total = sum(stages.values())
        print(f"# Training step ({type(model).__name__}, {training_args.optim}, precision "
              f"{'bf16 autocast' if training_args.bf16 else 'fp32'}, batch {training_args.train_batch_size}), "
              f"{args.steps} steps after {args.warmup} warm-up: {1000 * total / args.steps:.1f} ms a step\n")
        print_table(["stage", "ms a step", "share"], [(name, f"{1000 * seconds / args.steps:.1f}", f"{seconds / total:.1%}")
                                                       for name, seconds in stages.items()])

        with profile(activities=[ProfilerActivity.CPU]) as trace:
            for _ in range(3):
                step(False)
        print(f"\n# Operators, 3 training steps, by self CPU time (top {args.top})\n")
        print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))

        model.eval()
        rows = tokenized["validation"]
        eval_batch = trainer.data_collator([rows[i] for i in range(min(args.predict_batch, len(rows)))])
        eval_batch.pop("labels", None)
        with torch.inference_mode(), autocast_for(training_args):
            model(**eval_batch)
            with profile(activities=[ProfilerActivity.CPU]) as trace:
                model(**eval_batch)
        print(f"\n# Operators, one prediction batch of {len(eval_batch['input_ids'])} validation texts, by self CPU "
              f"time (top {args.top})\n")
        print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
