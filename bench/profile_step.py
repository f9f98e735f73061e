"""Where a training step and a prediction batch spend their time: by stage and by operator (torch.profiler).

    python bench/profile_step.py --model MODEL_FOLDER [--recipe sentiment] [--steps 20]

Builds the recipe's trainer exactly as its defaults do (bench/throughput.py's loader), then runs its
training batches by hand the way Trainer does (bf16 autocast where Trainer would use it, forward,
backward, gradient clipping, AdamW, scheduler), timing each stage after a few warm-up steps; then
profiles a few steps and one prediction batch with torch.profiler and prints the operators with the
most self CPU time. Nothing is asserted; the write-up is in docs/benchmarks.md.
"""

import argparse
import contextlib
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--recipe", default="sentiment")
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from common.training.stages import build_trainer
    from throughput import load

    with tempfile.TemporaryDirectory() as work:
        args.work = work
        _, model, tokenizer, tokenized, training_args, _ = load(args, ["--max_steps", str(args.steps)])
        trainer = build_trainer(model, training_args, tokenizer, tokenized["train"])
        trainer.create_optimizer_and_scheduler(num_training_steps=args.steps + args.warmup + 3)
        optimizer, scheduler = trainer.optimizer, trainer.lr_scheduler
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if training_args.bf16 else contextlib.nullcontext()
        batches = iter(trainer.get_train_dataloader())
        model.train()
        stages = defaultdict(float)

        def step(timed: bool):
            marks = [time.perf_counter()]
            batch = next(batches)
            marks.append(time.perf_counter())
            with autocast:
                loss = model(**batch).loss
            marks.append(time.perf_counter())
            loss.backward()
            marks.append(time.perf_counter())
            torch.nn.utils.clip_grad_norm_(model.parameters(), training_args.max_grad_norm)
            optimizer.step()
            marks.append(time.perf_counter())
            scheduler.step()
            optimizer.zero_grad()
            marks.append(time.perf_counter())
            if timed:
                for name, start, end in zip(("data (sampler + collator)", "forward", "backward",
                                             "clip + optimizer step", "scheduler + zero_grad"), marks, marks[1:]):
                    stages[name] += end - start

        for _ in range(args.warmup):
            step(False)
        for _ in range(args.steps):
            step(True)
        total = sum(stages.values())
        print(f"# Training step ({type(model).__name__}, {training_args.optim}, precision "
              f"{'bf16 autocast' if training_args.bf16 else 'fp32'}, batch {training_args.train_batch_size}), "
              f"{args.steps} steps after {args.warmup} warm-up: {1000 * total / args.steps:.1f} ms a step\n")
        print("| stage | ms a step | share |\n|---|---|---|")
        for name, seconds in stages.items():
            print(f"| {name} | {1000 * seconds / args.steps:.1f} | {seconds / total:.1%} |")

        with profile(activities=[ProfilerActivity.CPU]) as trace:
            for _ in range(3):
                step(False)
        print(f"\n# Operators, 3 training steps, by self CPU time (top {args.top})\n")
        print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))

        model.eval()
        eval_batch = trainer.data_collator([tokenized["validation"][i] for i in range(64)])
        eval_batch.pop("labels", None)
        with torch.inference_mode(), autocast:
            model(**eval_batch)
            with profile(activities=[ProfilerActivity.CPU]) as trace:
                model(**eval_batch)
        print(f"\n# Operators, one prediction batch of 64 validation texts, by self CPU time (top {args.top})\n")
        print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
