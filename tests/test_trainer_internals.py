"""What the code relies on below its libraries' public APIs is declared, still there and still used.

`common/internals.py` lists each such name and why; these tests derive the private names the code uses
from its source (an undeclared one fails), check every declared one against the installed libraries,
and name the ones an upgrade removed or stopped using.
"""

import io

import datasets
import pytest
import torch
import transformers
from transformers import AutoModelForTokenClassification, Trainer

from common.config.arguments import RecipeTrainingArguments
from common.internals import OTHER_INTERNALS, TRAINER_INTERNALS
from common.training.trainer import RecipeTrainer


@pytest.fixture
def token_trainer(tmp_path, tiny_bert):
    """A RecipeTrainer over four token-labelled rows, with gradient accumulation over two steps."""
    def build(rows=((0, 1, 2, -100), (1, -100), (2, 2, 2, 2, 2, 2), (0,)), **kwargs):
        model = AutoModelForTokenClassification.from_pretrained(str(tiny_bert), num_labels=3)
        rows = [list(r) for r in rows]
        dataset = datasets.Dataset.from_dict({"input_ids": [[5] * len(r) for r in rows], "labels": rows})
        args = RecipeTrainingArguments(output_dir=str(tmp_path / "o"), per_device_train_batch_size=2,
                                       gradient_accumulation_steps=2, report_to="none", use_cpu=True, **kwargs)
        return RecipeTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset)

    return build


def calls_through(trainer, hook: str, use) -> bool:
    """Whether `use(trainer)` (a public Trainer method) still calls our override of `hook`."""
    called, override = [], getattr(trainer, hook)
    setattr(trainer, hook, lambda *a, **k: called.append(hook) or override(*a, **k))
    use(trainer)
    return bool(called)


def step_loss(trainer, scaled_for_ga: bool) -> float:
    batch = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "labels": torch.tensor([[0, 1, 2, -100]])}
    trainer.loss_is_scaled_for_ga = scaled_for_ga
    trainer.current_gradient_accumulation_steps = 2
    trainer.model.train()
    return trainer.training_step(trainer.model, batch).item()


def model_flag_read(tiny_bert, value: bool) -> bool:
    model = AutoModelForTokenClassification.from_pretrained(str(tiny_bert), num_labels=3)
    model.accepts_loss_kwargs = value
    args = RecipeTrainingArguments(output_dir="unused", report_to="none", use_cpu=True)
    return Trainer(model=model, args=args).model_accepts_loss_kwargs is value


def loss_sum_saved(token_trainer) -> bool:
    """The loss sum in the last checkpoint's run_loss.json equals train_loss x steps (losses logged and not)."""
    import json
    from pathlib import Path

    rows = [(0, 1, 2, -100), (1, -100, 0, 0), (2, 2, 2, 2), (0, 1, 1, 1)]  # one length: collated without padding
    trainer = token_trainer(rows, max_steps=3, save_strategy="steps", save_steps=3, logging_steps=2)
    output = trainer.train()
    saved = json.loads((Path(trainer.args.output_dir) / "checkpoint-3" / "run_loss.json").read_text())
    return saved["global_step"] == 3 and saved["loss_sum"] == pytest.approx(3 * output.training_loss, rel=1e-6)


def items_reach_the_model(token_trainer) -> bool:
    """compute_loss passes num_items_in_batch to the model's forward exactly when model_accepts_loss_kwargs: such a
    model's loss then covers a whole optimizer step (TrainingLoss.scaled_for_ga)."""
    batch = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "labels": torch.tensor([[0, 1, 2, -100]])}
    seen = {}
    for accepts in (True, False):
        trainer = token_trainer(train_sampling_strategy="random")
        trainer.model_accepts_loss_kwargs = accepts
        forward = trainer.model.forward

        def recording_forward(*args, accepts=accepts, forward=forward, **kwargs):
            seen[accepts] = kwargs.pop("num_items_in_batch", None)
            return forward(*args, **kwargs)

        trainer.model.forward = recording_forward
        Trainer.compute_loss(trainer, trainer.model, batch, num_items_in_batch=torch.tensor(3))
    return seen[True] is not None and seen[False] is None


def accumulation_steps_set(token_trainer) -> bool:
    """The training loop sets current_gradient_accumulation_steps to the micro-batches of the optimizer step."""
    trainer = token_trainer(((0, 1), (1, 2), (2, 0), (0, 0)), max_steps=1)  # one length: collated without padding
    trainer.current_gradient_accumulation_steps = None
    trainer.train()
    return trainer.current_gradient_accumulation_steps == 2


def extra_column_kept(token_trainer) -> bool:
    """A column named in `_signature_columns` by our override reaches the batches; one not named is dropped."""
    trainer = token_trainer(((0, 1), (1, 2), (2, 0), (0, 0)))  # one length: collated without padding
    trainer.train_dataset = trainer.train_dataset.add_column("teacher_logits", [[0.0, 1.0]] * 4).add_column(
        "other", [1] * 4)
    trainer.loss.distillation = object()  # what makes the override add teacher_logits
    batch = next(iter(trainer.get_train_dataloader()))
    return "teacher_logits" in trainer._signature_columns and "teacher_logits" in batch and "other" not in batch


def holds(check) -> bool:
    try:
        return bool(check())
    except Exception:  # a missing hook may fail anywhere in Trainer: report it by name all the same
        return False


def test_every_trainer_internal_we_rely_on_is_still_there(token_trainer, tiny_bert):
    checks = {
        "_get_train_sampler": lambda: hasattr(Trainer, "_get_train_sampler") and calls_through(
            token_trainer(), "_get_train_sampler", lambda t: t.get_train_dataloader()),
        "_get_eval_sampler": lambda: hasattr(Trainer, "_get_eval_sampler") and all(calls_through(
            token_trainer(), "_get_eval_sampler", use) for use in (lambda t: t.get_eval_dataloader(),
                                                                   lambda t: t.get_test_dataloader(t.eval_dataset))),
        # read by training_step: True leaves the loss as it is, False divides it by the accumulation steps
        "loss_is_scaled_for_ga": lambda: hasattr(Trainer, "loss_is_scaled_for_ga") and step_loss(
            token_trainer(train_sampling_strategy="random"), True) == pytest.approx(
            2 * step_loss(token_trainer(train_sampling_strategy="random"), False), rel=1e-5),
        "accepts_loss_kwargs": lambda: model_flag_read(tiny_bert, False) and model_flag_read(tiny_bert, True),
        "_save_checkpoint": lambda: hasattr(Trainer, "_save_checkpoint") and calls_through(
            token_trainer(((0, 1), (1, 2)), max_steps=1, save_strategy="steps", save_steps=1), "_save_checkpoint",
            lambda t: t.train()),
        "_total_loss_scalar": lambda: loss_sum_saved(token_trainer),
        "_tr_loss": lambda: loss_sum_saved(token_trainer),
        "_get_output_dir": lambda: hasattr(Trainer, "_get_output_dir") and loss_sum_saved(token_trainer),
        "model_accepts_loss_kwargs": lambda: items_reach_the_model(token_trainer),
        "current_gradient_accumulation_steps": lambda: accumulation_steps_set(token_trainer),
        "_set_signature_columns_if_needed": lambda: hasattr(Trainer, "_set_signature_columns_if_needed") and calls_through(
            token_trainer(), "_set_signature_columns_if_needed", lambda t: t.get_train_dataloader()),
        "_signature_columns": lambda: extra_column_kept(token_trainer),
    }
    assert set(checks) == set(TRAINER_INTERNALS), "every entry of TRAINER_INTERNALS needs a check here"
    broken = [f"{name} ({TRAINER_INTERNALS[name]})" for name, check in checks.items() if not holds(check)]
    assert not broken, "transformers.Trainer no longer provides or uses: " + "; ".join(broken)


def progress_bars_are_listed() -> bool:
    from tqdm import tqdm

    bar = tqdm(total=1, disable=False, file=io.StringIO())
    listed = bar in tqdm._instances
    bar.close()
    return listed and bar not in tqdm._instances


def tiny_bert_config():
    return transformers.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=8)


def auto_class_for_bert_is(auto_class, name: str) -> bool:
    from transformers.models.auto.auto_factory import _get_model_class

    return _get_model_class(tiny_bert_config(), auto_class._model_mapping).__name__ == name


def test_every_other_library_internal_we_rely_on_is_still_there():
    rows = datasets.Dataset.from_dict({"text": ["a", "b"]})
    checks = {
        "_fingerprint": lambda: isinstance(rows._fingerprint, str) and rows._fingerprint != datasets.Dataset.from_dict(
            {"text": ["a", "c"]})._fingerprint,
        "_is_avx512_bf16_supported": lambda: isinstance(torch.cpu._is_avx512_bf16_supported(), bool),
        "_is_amx_tile_supported": lambda: isinstance(torch.cpu._is_amx_tile_supported(), bool),
        "_instances": progress_bars_are_listed,
        "_get_model_class": lambda: auto_class_for_bert_is(AutoModelForTokenClassification, "BertForTokenClassification"),
        "_model_mapping": lambda: auto_class_for_bert_is(transformers.AutoModelForMaskedLM, "BertForMaskedLM"),
        "_from_config": lambda: type(transformers.BertForMaskedLM._from_config(tiny_bert_config())).__name__ ==
        "BertForMaskedLM",
    }
    assert set(checks) == set(OTHER_INTERNALS), "every entry of OTHER_INTERNALS needs a check here"
    broken = [f"{OTHER_INTERNALS[name][0]}.{name}" for name, check in checks.items() if not holds(check)]
    assert not broken, "no longer provided: " + ", ".join(broken)


def private_names_used(files) -> set[str]:
    """`_` names (not dunders) read as attributes, passed as keywords or named in getattr/hasattr, that the code
    itself does not define (as a function, class, variable, attribute or parameter)."""
    import ast

    defined, used = set(), set()
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.keyword) and node.arg:
                used.add(node.arg)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr") \
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                used.add(node.args[1].value)
    return {n for n in used - defined if n.startswith("_") and not n.startswith("__")}


def test_every_private_library_name_the_code_uses_is_declared(repo):
    """Derived from the code: a `_` name it reads from a library, anywhere in common/ or recipes/, is declared."""
    files = [p for folder in ("common", "recipes") for p in (repo / folder).rglob("*.py")]
    undeclared = private_names_used(files) - set(TRAINER_INTERNALS) - set(OTHER_INTERNALS)
    assert not undeclared, f"private library names used but not in common/internals.py: {sorted(undeclared)}"


def test_every_private_trainer_name_the_code_uses_is_declared(repo):
    """Derived from the code: a `_` name RecipeTrainer reads from Trainer, or a private Trainer method it overrides,
    must be in TRAINER_INTERNALS (and so checked above)."""
    import ast

    tree = ast.parse((repo / "common" / "training" / "trainer.py").read_text())
    recipe_trainer = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RecipeTrainer")
    methods = {n.name for n in recipe_trainer.body if isinstance(n, ast.FunctionDef)}
    assigned, read = set(), set()
    for node in ast.walk(recipe_trainer):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
        on_super = isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "super"
        if on_self and isinstance(node.ctx, ast.Store):
            assigned.add(node.attr)
        elif on_self or on_super:
            read.add(node.attr)
    used = {name for name in read if name not in methods and name not in assigned}
    overridden = {name for name in methods
                  if name.startswith("_") and not name.startswith("__") and hasattr(Trainer, name)}
    undeclared = (used | overridden) - set(TRAINER_INTERNALS)
    assert not undeclared, f"private parts of Trainer used but not in TRAINER_INTERNALS: {sorted(undeclared)}"
