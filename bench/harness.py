"""What the bench scripts share: the recipes' own set-up, each measurement in its own process repeated in
interleaved rounds (medians, and ratios taken within a round), a training step taken as Trainer takes it
(through RecipeTrainer.compute_loss), and whole recipe runs read back from their results files.

A shared 2-core VM can run a whole measurement 40% slower when a neighbour is busy: hence the rounds,
a candidate right after its reference in each, and ratios within a round.
"""

import contextlib
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `common` and `recipes` importable when a bench script runs as a script
    sys.path.insert(0, str(REPO))

# Settings that keep a measured run to training alone: no evaluation, checkpoints, logging or progress bars
QUIET = ["--report_to", "none", "--disable_tqdm", "True", "--eval_strategy", "no", "--save_strategy", "no",
         "--do_eval", "False", "--load_best_model_at_end", "False", "--logging_strategy", "no"]
CLASSIFICATION_CONFIGS = {"sentiment": "sst2", "text_classification": "ag_news"}
DATA_DIR = str(REPO.parent / "shared" / "data")  # the benchmark data beside the repository


def peak_rss_mb() -> float:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the recipes' own set-up
def recipe_arguments(recipe: str, config: str, model: str, data_dir: str, work: str, extra: list[str]):
    """The recipe's dataclasses parsed from its benchmark config and the command line, as the recipe parses them."""
    from common.config.parsing import parse_args

    module = importlib.import_module(f"recipes.{recipe}.run")
    return parse_args(module.ARGUMENTS, ["--config", str(module.CONFIGS / f"{config}.yaml"), "--model", model,
                                         "--data_dir", data_dir, "--output_dir", work, *QUIET, *extra])


def classification_setup(recipe: str, model: str, data_dir: str, work: str, extra: list[str]):
    """Data, model and tokenized splits built by the calls the classification recipes make, in their order."""
    from common.data.labels import build_label_list, encode_labels
    from common.data.text import load_text_data
    from common.models.heads import build_classifier
    from common.models.tokenizer import load_tokenizer
    from common.tokens.tokenization import max_input_length, tokenization_settings, tokenize_splits

    model_args, data_args, training_args, *_ = recipe_arguments(recipe, CLASSIFICATION_CONFIGS[recipe], model,
                                                                data_dir, work, ["--explain_examples", "0", *extra])
    raw = load_text_data(data_args, seed=training_args.seed)
    labels = build_label_list(raw, data_args.multi_label, data_args.label_separator)
    encode_labels(raw, labels, data_args.multi_label, data_args.label_separator)
    tokenizer = load_tokenizer(model_args)
    built = build_classifier(model_args, labels, tokenizer, data_args.multi_label)
    max_length = max_input_length(tokenizer, built.config, data_args.max_seq_length)
    tokenized = tokenize_splits(raw, tokenizer, max_length, **tokenization_settings(data_args))
    return raw, built, tokenizer, tokenized, training_args, data_args


def ner_setup(model: str, data_dir: str, work: str, extra: list[str]):
    """The NER recipe's CoNLL-2003 set-up (its config and calls): model, tokenizer, training rows, arguments."""
    from common.data.tagged import load_tagged_data, tag_set
    from common.models.heads import build_token_classifier
    from common.models.tokenizer import load_tokenizer, require_fast_tokenizer
    from common.tokens.tokenization import max_input_length
    from common.tokens.word_labels import encode_tagged_split

    model_args, data_args, training_args, *_ = recipe_arguments("ner", "conll2003", model, data_dir, work, extra)
    data = load_tagged_data(data_args)
    labels = tag_set(data)
    tokenizer = load_tokenizer(model_args, words_given=True)
    require_fast_tokenizer(tokenizer, model_args.model_name_or_path)
    built = build_token_classifier(model_args, labels, tokenizer)
    max_length = max_input_length(tokenizer, built.config, data_args.max_seq_length)
    train = data.splits["train"]
    features = encode_tagged_split(train.tokens, train.tags, tokenizer, built.config.label2id, max_length,
                                   data_args.stride, data_args.label_all_tokens, "train")
    return built, tokenizer, features.dataset, training_args


# --- a training step, by hand, as Trainer takes it
def step_trainer(model, training_args, tokenizer, train_dataset, keep_freed: bool = True):
    """The recipes' trainer (build_trainer), or with keep_freed False the same RecipeTrainer without
    keep_freed_memory() (glibc's own allocator behaviour): for measuring what that setting gives."""
    from transformers import DataCollatorWithPadding

    from common.training.stages import build_trainer
    from common.training.trainer import RecipeTrainer

    if keep_freed:
        return build_trainer(model, training_args, tokenizer, train_dataset)
    return RecipeTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer,
                         data_collator=DataCollatorWithPadding(tokenizer))


def autocast_for(training_args):
    """bf16 autocast where Trainer would use it, else nothing."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if training_args.bf16 else contextlib.nullcontext()


def training_step(trainer, batch, model=None, marks: list | None = None, before_optimizer=None) -> float:
    """One optimizer step as Trainer takes it: RecipeTrainer.compute_loss under autocast, backward, clipping,
    optimizer, scheduler. `model`: what runs the forward (a compiled model, say); `marks`: times appended after
    each stage (forward + loss, backward, clip + optimizer step, scheduler + zero_grad)."""
    import torch

    args, optimizer, scheduler = trainer.args, trainer.optimizer, trainer.lr_scheduler
    with autocast_for(args):
        loss = trainer.compute_loss(model or trainer.model, batch)
    stamp = marks.append if marks is not None else (lambda _: None)
    stamp(time.perf_counter())
    loss.backward()
    stamp(time.perf_counter())
    torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), args.max_grad_norm)
    if before_optimizer is not None:
        before_optimizer()
    optimizer.step()
    stamp(time.perf_counter())
    scheduler.step()
    optimizer.zero_grad()
    stamp(time.perf_counter())
    return loss.item()


# --- measurements in their own processes, in interleaved rounds
def measure_in_process(script: str, flags: list[str], env: dict | None = None) -> dict:
    """Run `script flags` in a new process; its last line of output is a JSON object, returned."""
    done = subprocess.run([sys.executable, script, *flags], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(flags)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved_rounds(names, measure, rounds: int) -> list[dict]:
    """[{name: measure(name)} for each round]: every name measured once a round, in the order given."""
    results = []
    for number in range(1, rounds + 1):
        results.append({name: measure(name) for name in names})
        print(f"bench: round {number} of {rounds} done", file=sys.stderr)
    return results


def median_of(rounds: list[dict], name: str, key: str) -> float:
    """The median over the rounds of one measurement's figure."""
    return statistics.median(r[name][key] for r in rounds)


def ratio_cell(rounds: list[dict], numerator: str, denominator: str, key: str, higher_is_faster: bool = True) -> str:
    """The median ratio of two measurements' figure, taken within each round, and every round's."""
    each = [r[numerator][key] / r[denominator][key] for r in rounds]
    if not higher_is_faster:
        each = [1 / x for x in each]
    return f"{statistics.median(each):.2f}x ({', '.join(f'{x:.2f}x' for x in each)})"


# --- whole recipe runs
def matmul_peak(dtype: str = "fp32", size: int = 2048, seconds: float = 3.0) -> float:
    """GFLOP/s of a large square matmul in fp32 or bf16, the best of a few timed runs."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)
    best, end = 0.0, time.time() + seconds
    while time.time() < end:
        start = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        best = max(best, 4 * 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def run_recipe(out: Path, model_flags: list[str], data_dir: str, *flags: str, recipe: str = "sentiment",
               config: str = "sst2", results_file: str = "all_results.json",
               as_configured: bool = False, wrapper: tuple[str, ...] = ()) -> tuple[dict, float, float]:
    """A recipe run in its own process, without checkpoints or evaluation during training (or with
    `as_configured`, as its config says, as run_all.sh runs it): its results file, wall seconds and peak
    memory in GB (/usr/bin/time's maximum resident set size). `wrapper`: a script (and its flags) that
    Python runs instead, given the recipe's path and flags after its own."""
    quiet = [] if as_configured else ["--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end",
                                      "False"]
    command = ["/usr/bin/time", "-f", "%M", sys.executable, *wrapper, str(REPO / f"recipes/{recipe}/run.py"),
               "--config", str(REPO / f"recipes/{recipe}/configs/{config}.yaml"), *model_flags, "--data_dir", data_dir,
               "--output_dir", str(out), "--disable_tqdm", "True", *quiet, *flags]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    peak_gb = int(done.stderr.strip().splitlines()[-1]) / 1024 ** 2
    return json.loads((out / results_file).read_text()), seconds, peak_gb


def run_or_read_back(out: Path, model_flags: list[str], data_dir: str, *flags: str, **recipe) -> tuple[dict, str]:
    """A recipe run as run_all.sh runs it, or its results when `out` already holds them: results and wall time."""
    if (out / "all_results.json").exists():
        return json.loads((out / "all_results.json").read_text()), "read back"
    run, seconds, _ = run_recipe(out, model_flags, data_dir, *flags, as_configured=True, **recipe)
    return run, f"{seconds:.0f} s"


def seeds_cell(scores: list[float]) -> str:
    """Scores of several seeds: their mean, then each; one seed: its score."""
    each = " / ".join(f"{score:.4f}" for score in scores)
    return each if len(scores) == 1 else f"{statistics.mean(scores):.4f} ({each})"


def print_table(header: list[str], rows: list[tuple]) -> None:
    """A Markdown table."""
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")
