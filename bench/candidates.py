"""What each speed candidate gives a training step, measured on the same batches.

    python bench/candidates.py --model MODEL_FOLDER [--steps 60] [--rounds 2]

Runs the sentiment recipe's first training batches by hand, the way Trainer does (bf16 autocast where
native, forward, backward, clipping, the optimizer, the scheduler), once per variant, each in its own
process and repeated in interleaved rounds. Prints, per variant, the time of the first steps (where
compiling happens), the steady milliseconds a step after them against the baseline of the same round
(each candidate alone), and the loss of the last step (a candidate that only changes speed leaves it as it is):
- baseline: the recipe's step without the kept candidate (glibc's default allocator behaviour);
- keep-freed-memory: common.config.hardware.keep_freed_memory(), which build_trainer now calls;
- compile: torch.compile of the model (the first steps include compiling: the cost to amortise);
- foreach-adamw: `--optim adamw_torch` instead of the recipe's fused AdamW;
- eager-attention: attn_implementation="eager" instead of SDPA;
- no-dropout: every dropout probability 0 (not a candidate: it changes training; it shows what dropout costs);
- nonfinite-guard: the check the recipes run before each optimizer step (common/training/guards.py: every
  gradient finite), to show its cost.
Nothing is asserted.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
VARIANTS = ("baseline", "keep-freed-memory", "compile", "foreach-adamw", "eager-attention", "no-dropout",
            "nonfinite-guard")


def measure(args) -> dict:
    import torch

    from transformers import set_seed

    from common.training import stages
    from common.training.guards import StopOnNonFiniteGradients
    from throughput import load

    set_seed(42)  # the same new head and dropout masks in every variant's process

    if args.variant != "keep-freed-memory":  # every other candidate alone, against the step as it was before
        stages.keep_freed_memory = lambda: False
    extra = ["--max_steps", str(args.steps + args.warmup)]
    if args.variant == "foreach-adamw":
        extra += ["--optim", "adamw_torch"]
    with tempfile.TemporaryDirectory() as work:
        args.work = work
        _, model, tokenizer, tokenized, training_args, _ = load(args, extra)
        if args.variant == "eager-attention":
            model.set_attn_implementation("eager")
        if args.variant == "no-dropout":
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
        trainer = stages.build_trainer(model, training_args, tokenizer, tokenized["train"])
        trainer.create_optimizer_and_scheduler(num_training_steps=args.steps + args.warmup)
        optimizer, scheduler = trainer.optimizer, trainer.lr_scheduler
        batches = [b for _, b in zip(range(args.steps + args.warmup), trainer.get_train_dataloader())]
        forward = torch.compile(model) if args.variant == "compile" else model
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if training_args.bf16 else contextlib.nullcontext()
        model.train()
        guard = StopOnNonFiniteGradients() if args.variant == "nonfinite-guard" else None

        def step(batch):
            with autocast:
                loss = forward(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), training_args.max_grad_norm)
            if guard is not None:
                guard.on_pre_optimizer_step(training_args, trainer.state, trainer.control, model=model)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            return loss.item()

        start = time.perf_counter()
        for batch in batches[:args.warmup]:
            step(batch)
        first = time.perf_counter() - start
        start = time.perf_counter()
        losses = [step(batch) for batch in batches[args.warmup:]]
        steady = time.perf_counter() - start
    return {"first steps s": first, "ms a step": 1000 * steady / args.steps, "last loss": losses[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--recipe", default="sentiment")
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=60, help="timed steps, after the warm-up ones")
    parser.add_argument("--warmup", type=int, default=10, help="first steps, timed apart (compiling happens here)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="which to run (baseline always runs)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args)))
        return

    rounds = []
    for number in range(1, args.rounds + 1):
        result = {}
        for variant in dict.fromkeys(["baseline", *args.variants]):
            done = subprocess.run([sys.executable, __file__, "--variant", variant, "--model", args.model, "--recipe",
                                   args.recipe, "--data_dir", args.data_dir, "--steps", str(args.steps), "--warmup",
                                   str(args.warmup)], capture_output=True, text=True,
                                  # compiling counted in full: no kernels cached by an earlier run
                                  env={**os.environ, "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"})
            if done.returncode != 0:
                sys.exit(f"bench: {variant} failed:\n{done.stderr[-2000:]}")
            result[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        rounds.append(result)
        print(f"bench: round {number} of {args.rounds} done", file=sys.stderr)

    print(f"# Training-step candidates: recipes/{args.recipe}, model {args.model}, the same {args.steps} batches "
          f"after {args.warmup} warm-up ones, medians of {args.rounds} interleaved rounds\n")
    print("| variant | first steps (s) | ms a step | speed against the baseline (rounds) | last loss |\n"
          "|---|---|---|---|---|")
    for variant in rounds[0]:
        speeds = [r["baseline"]["ms a step"] / r[variant]["ms a step"] for r in rounds]
        print(f"| {variant} | {statistics.median(r[variant]['first steps s'] for r in rounds):.1f} | "
              f"{statistics.median(r[variant]['ms a step'] for r in rounds):.1f} | {statistics.median(speeds):.2f}x "
              f"({', '.join(f'{x:.2f}x' for x in speeds)}) | {rounds[0][variant]['last loss']:.6f} |")


if __name__ == "__main__":
    main()
