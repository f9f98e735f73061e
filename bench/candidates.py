"""What each speed candidate gives a training step, measured on the same batches.

    python bench/candidates.py --model MODEL_FOLDER [--steps 60] [--rounds 2]

Runs the sentiment recipe's first training batches by hand, the way Trainer does (bf16 autocast where
native, RecipeTrainer.compute_loss, backward, clipping, the optimizer, the scheduler: bench/harness.py),
built by the recipe's own set-up calls, once per variant, each in its own
process and repeated in interleaved rounds. Prints, per variant, the time of the first steps (where
compiling happens), the steady milliseconds a step after them against the baseline of the same round
(each candidate alone), and the loss of the last step (a candidate that only changes speed leaves it as it is):
- baseline: the recipe's step as it is (build_trainer's set-up, keep_freed_memory() included);
- glibc-defaults: without common.config.hardware.keep_freed_memory() (glibc's own allocator behaviour);
- compile: torch.compile of the model (the first steps include compiling: the cost to amortise);
- foreach-adamw: `--optim adamw_torch` instead of the recipe's fused AdamW;
- eager-attention: attn_implementation="eager" instead of SDPA;
- no-dropout: every dropout probability 0 (not a candidate: it changes training; it shows what dropout costs);
- nonfinite-guard: the check the recipes run before each optimizer step (common/training/guards.py: every
  gradient finite), to show its cost.
Nothing is asserted.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import (DATA_DIR, classification_setup, interleaved_rounds, measure_in_process, median_of,  # noqa: E402
                           print_table, ratio_cell, step_trainer, training_step)

VARIANTS = ("baseline", "glibc-defaults", "compile", "foreach-adamw", "eager-attention", "no-dropout",
            "nonfinite-guard")


def measure(args) -> dict:
    """One variant's first steps and steady steps on the recipe's first training batches (run in its own process)."""
    import torch
    from transformers import set_seed

    from common.training.guards import StopOnNonFiniteGradients

    set_seed(42)  # the same new head and dropout masks in every variant's process
    extra = ["--max_steps", str(args.steps + args.warmup)]
    if args.variant == "foreach-adamw":
        extra += ["--optim", "adamw_torch"]
    with tempfile.TemporaryDirectory() as work:
        _, model, tokenizer, tokenized, training_args, _ = classification_setup(args.recipe, args.model, args.data_dir,
                                                                                work, extra)
        if args.variant == "eager-attention":
            model.set_attn_implementation("eager")
        if args.variant == "no-dropout":
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
        trainer = step_trainer(model, training_args, tokenizer, tokenized["train"],
                               keep_freed=args.variant != "glibc-defaults")
        trainer.create_optimizer_and_scheduler(num_training_steps=args.steps + args.warmup)
        batches = [b for _, b in zip(range(args.steps + args.warmup), trainer.get_train_dataloader())]
        forward = torch.compile(model) if args.variant == "compile" else model
        model.train()
        guard = None
        if args.variant == "nonfinite-guard":
            check = StopOnNonFiniteGradients()
            guard = lambda: check.on_pre_optimizer_step(training_args, trainer.state, trainer.control, model=model)  # noqa: E731
        start = time.perf_counter()
        for batch in batches[:args.warmup]:
            training_step(trainer, batch, forward, before_optimizer=guard)
        first = time.perf_counter() - start
        start = time.perf_counter()
        losses = [training_step(trainer, batch, forward, before_optimizer=guard) for batch in batches[args.warmup:]]
        steady = time.perf_counter() - start
    return {"first steps s": first, "ms a step": 1000 * steady / args.steps, "last loss": losses[-1]}


def main():
    """Every variant in its own process, in interleaved rounds; a table of medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--recipe", default="sentiment")
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--steps", type=int, default=60, help="timed steps, after the warm-up ones")
    parser.add_argument("--warmup", type=int, default=10, help="first steps, timed apart (compiling happens here)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="which to run (baseline always runs)")
    parser.add_argument("--same_process", action="store_true", help="measure every variant in this process (a quick "
                        "check that the script runs: the timings are then not each variant's alone)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        import json

        print(json.dumps(measure(args)))
        return

    flags = ["--model", args.model, "--recipe", args.recipe, "--data_dir", args.data_dir, "--steps", str(args.steps),
             "--warmup", str(args.warmup)]
    # compiling counted in full: no kernels cached by an earlier run
    def measure_variant(variant):
        if args.same_process:
            return measure(argparse.Namespace(**{**vars(args), "variant": variant}))
        return measure_in_process(__file__, ["--variant", variant, *flags], env={"TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"})

    rounds = interleaved_rounds(dict.fromkeys(["baseline", *args.variants]), measure_variant, args.rounds)
    print(f"# Training-step candidates: recipes/{args.recipe}, model {args.model}, the same {args.steps} batches "
          f"after {args.warmup} warm-up ones, medians of {args.rounds} interleaved rounds\n")
    print_table(["variant", "first steps (s)", "ms a step", "speed against the baseline (rounds)", "last loss"],
                [(variant, f"{median_of(rounds, variant, 'first steps s'):.1f}",
                  f"{median_of(rounds, variant, 'ms a step'):.1f}",
                  ratio_cell(rounds, variant, "baseline", "ms a step", higher_is_faster=False),
                  f"{rounds[0][variant]['last loss']:.6f}") for variant in rounds[0]])


if __name__ == "__main__":
    main()
