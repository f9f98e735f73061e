"""Every bench script runs, on a tiny model and a few steps of the real benchmark data, and prints its tables.

The figures of a tiny model mean nothing; what is checked is that each script still runs end to end
through the recipes' own set-up and prints tables of the expected shape (header, separator, one row
per measurement, every row as wide as its header).
"""

import gzip
import itertools
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

BENCHMARKS = ("sst2", "conll2003", "bbc_news", "chnsenticorp", "cluener2020", "zh_corpus")


@pytest.fixture(scope="module")
def small_data(shared_data, tmp_path_factory):
    """The start of each benchmark the scripts read, in the same layout: the real files' first rows."""
    folder = tmp_path_factory.mktemp("small-benchmarks")
    for name in BENCHMARKS:
        if not (shared_data / name).is_dir():
            continue
        (folder / name).mkdir()
        trained = None  # the labels of the small training file: other splits keep only rows with those
        for source in sorted((shared_data / name).iterdir(), key=lambda p: not p.name.startswith("train")):
            target = folder / name / source.name
            if source.suffix == ".csv":  # quoted fields may hold line breaks: rows, not lines
                rows = pd.read_csv(source, nrows=300 if trained is None else 40)
                label = rows.columns[-1]
                trained = set(rows[label]) if trained is None else trained
                rows[rows[label].isin(trained)].to_csv(target, index=False)
            elif source.suffix == ".tsv":
                target.write_text("".join(source.open(encoding="utf-8").readlines()[:201]), encoding="utf-8")
            elif source.suffix == ".json":  # JSON lines (CLUENER2020)
                target.write_text("".join(source.open(encoding="utf-8").readlines()[:120]), encoding="utf-8")
            elif source.name.endswith(".txt.gz"):  # plain text, one document per line (zh_corpus)
                with gzip.open(source, "rt", encoding="utf-8") as f, gzip.open(target, "wt", encoding="utf-8") as out:
                    out.writelines(itertools.islice(f, 400))
            elif source.suffix == ".txt":  # CoNLL: whole sentences, up to the first blank line after 600 lines
                lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
                end = next(i for i in range(600, len(lines)) if not lines[i].strip())
                target.write_text("".join(lines[:end + 1]), encoding="utf-8")
            else:
                shutil.copy(source, target)
    return folder


def tables(output: str) -> list[list[list[str]]]:
    """The Markdown tables in `output`: each a list of rows, each a list of cells (the separator row left out)."""
    found, current = [], []
    for line in output.splitlines() + [""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            found.append(current)
            current = []
    for table in found:
        assert set("".join(table[1])) <= {"-"}, f"no separator under the header: {table[:2]}"
        assert all(len(row) == len(table[0]) for row in table), f"rows unlike their header: {table}"
    return [[table[0], *table[2:]] for table in found]


def bench_process(repo, script: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(repo / "bench" / script), *flags], capture_output=True, text=True,
                          cwd="/", timeout=900)  # any folder: the scripts find the repository themselves


def run_bench(repo, script: str, *flags: str) -> str:
    done = bench_process(repo, script, *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.needs_data("sst2")
def test_candidates_prints_one_row_per_variant(repo, tiny_bert, small_data):
    out = run_bench(repo, "candidates.py", "--model", str(tiny_bert), "--data_dir", str(small_data), "--steps", "2",
                    "--warmup", "1", "--rounds", "1", "--variants", "glibc-defaults", "nonfinite-guard", "--same_process")
    (table,) = tables(out)
    assert [row[0] for row in table[1:]] == ["baseline", "glibc-defaults", "nonfinite-guard"]
    assert table[1][3].startswith("1.00x")  # the baseline against itself
    losses = {row[4] for row in table[1:]}
    assert len(losses) == 1, f"variants that change only speed changed the loss: {losses}"


@pytest.mark.needs_data("sst2")
def test_profile_step_prints_the_stages_and_the_operators(repo, tiny_bert, small_data):
    out = run_bench(repo, "profile_step.py", "--model", str(tiny_bert), "--data_dir", str(small_data), "--steps", "2",
                    "--warmup", "1", "--predict_batch", "4")
    stages = tables(out)[0]
    assert [row[0] for row in stages[1:]] == ["data (sampler + collator)", "forward + loss", "backward",
                                              "clip + optimizer step", "scheduler + zero_grad"]
    assert out.count("# Operators") == 2


@pytest.mark.needs_data("sst2", "conll2003")
def test_throughput_prints_its_three_tables_and_ratios(repo, tiny_bert, small_data):
    out = run_bench(repo, "throughput.py", "--model", str(tiny_bert), "--data_dir", str(small_data), "--steps", "3",
                    "--warmup_steps", "1", "--rounds", "1", "--same_process", "--matmul_seconds", "0.1")
    training, ner, prediction = tables(out)
    assert len(training) == 4 and len(ner) == 3 and len(prediction) == 4
    assert out.count("x (") >= 3 and "## The three ratios" in out


@pytest.mark.needs_data("sst2")
def test_training_controls_prints_one_row_per_run(repo, tiny_bert, small_data):
    out = run_bench(repo, "training_controls.py", "--model", str(tiny_bert), "--data_dir", str(small_data),
                    "--only", "sgd", "--sgd_rates", "0.1", "--rows", "64")
    (table,) = tables(out)
    assert [row[0] for row in table[1:]] == ["AdamW (default), 2,000 rows", "SGD momentum 0.9, lr 0.1"]


@pytest.mark.needs_data("bbc_news")
def test_long_text_prints_one_row_per_strategy(repo, tiny_bert, small_data):
    out = run_bench(repo, "long_text.py", "--model", str(tiny_bert), "--data_dir", str(small_data), "--only",
                    "head_tail", "--max_seq_length", "32", "--recipe_flags=--max_train_samples 40 --num_train_epochs 1 "
                    "--max_predict_samples 20 --max_eval_samples 20")
    (table,) = tables(out)
    assert [row[0] for row in table[1:]] == ["`head_tail`"]


@pytest.mark.needs_data("sst2")
def test_decoder_prints_one_row_per_run(repo, tiny_bert, small_data):
    out = run_bench(repo, "decoder.py", "--minilm", str(tiny_bert), "--data_dir", str(small_data), "--only", "minilm",
                    "--recipe_flags=--max_train_samples 64 --max_eval_samples 32")
    (table,) = tables(out)
    assert len(table) == 2 and table[1][0].startswith("MiniLM")


@pytest.mark.needs_data("zh_corpus")
def test_masking_prints_one_row_per_pretrained_model(repo, small_data):
    out = run_bench(repo, "masking.py", "--data_dir", str(small_data), "--steps", "2", "--maskings", "token",
                    "--skip_scratch", "--pretrain_flags=--eval_steps 1 --save_steps 1 --max_seq_length 64",
                    "--tasks=", "--matmul_seconds", "0.1")  # the fine-tunes are the Chinese recipe's own runs
    (table,) = tables(out)
    assert len(table) == 2 and len(table[0]) == 4 and table[1][0] == "pretrained, `token` masking"
    assert "GFLOP/s" in out


@pytest.mark.needs_data("zh_corpus", "chnsenticorp")
def test_masking_fine_tunes_once_per_seed_and_reads_back_what_its_work_folder_holds(repo, small_data, tmp_path):
    flags = ["--data_dir", str(small_data), "--maskings", "token", "--skip_scratch", "--tasks", "0", "--seeds", "42,43",
             "--pretrain_flags=--eval_steps 1 --save_steps 1 --max_seq_length 64", "--recipe_flags=--max_steps 2",
             "--matmul_seconds", "0.1", "--work", str(tmp_path)]
    first = bench_process(repo, "masking.py", "--steps", "2", *flags)
    assert first.returncode == 0, first.stderr[-3000:]
    (table,) = tables(first.stdout)
    assert [yaml.safe_load((tmp_path / f"token-0-seed{seed}" / "run_config.yaml").read_text())["seed"]
            for seed in (42, 43)] == [42, 43]
    scores = [json.loads((tmp_path / f"token-0-seed{seed}" / "all_results.json").read_text())["test_accuracy"]
              for seed in (42, 43)]
    assert table[1][-1] == f"{(scores[0] + scores[1]) / 2:.4f} ({scores[0]:.4f} / {scores[1]:.4f})"

    again = bench_process(repo, "masking.py", "--steps", "2", *flags)
    assert again.returncode == 0
    (table_again,) = tables(again.stdout)  # the same, but for the share of the matmul peak, measured again
    assert [row[:3] + row[4:] for row in table_again] == [row[:3] + row[4:] for row in table]
    assert again.stderr.count("(read back)") == 3  # the pretraining and both fine-tunes: nothing ran again

    other = bench_process(repo, "masking.py", "--steps", "3", *flags)
    assert other.returncode != 0 and "holds a pretraining of 2 steps, not --steps 3" in other.stderr


def test_pretraining_dropout_prints_the_step_with_and_without_dropout(repo):
    out = run_bench(repo, "pretraining_dropout.py", "--vocabulary", "40", "--batch", "2", "--length", "16", "--steps",
                    "1", "--rounds", "1")
    (table,) = tables(out)
    assert [row[0] for row in table[1:]] == ["model's own (0.1)", "--pretraining_dropout 0"]
    assert table[1][3] == "1.00x" and float(table[2][3].rstrip("x")) > 0
    # embeddings, and each of the 2 layers' attention weights, attention output and feed-forward output
    assert table[1][4].startswith("7 calls, ") and table[2][4] == "0 calls, 0%"  # none left without dropout


def test_positions_prints_one_row_per_model(repo):
    out = run_bench(repo, "positions.py", "--steps", "4", "--length", "16", "--models", "ernie,roformer")
    (table,) = tables(out)
    assert [row[0] for row in table[1:]] == ["ernie", "roformer"]
    assert table[0][1:] == [f"step {n}" for n in (1, 2, 3, 4)] and all(float(cell) > 0 for cell in table[1][1:])


@pytest.mark.slow
@pytest.mark.needs_data("sst2")
def test_hp_search_prints_the_comparison_and_the_shared_study(repo, tiny_bert, small_data, tmp_path):
    out = run_bench(repo, "hp_search.py", "--model", str(tiny_bert), "--data_dir", str(small_data), "--train_rows",
                    "100", "--trials", "2", "--shared_trials", "6", "--shared_train_rows", "100", "--work",
                    str(tmp_path))
    comparison, shared = tables(out)
    assert [row[0] for row in comparison[1:]] == ["recipe defaults (configs/sst2.yaml)",
                                                  "search, 2 trials, then the best trained"]
    checks = dict(shared[1:])
    assert checks["trials counted / asked"] == "6 / 6" and checks["trial numbers used twice"] == "0"
    # the retry is judged by the median pruner against whichever trials ended first, so it may be pruned
    assert checks["killed trial"].endswith(": FAIL")
    assert checks["its settings run again"].rpartition(": ")[2] in {"COMPLETE", "PRUNED"}
    assert checks["trials listed (with the killed attempt)"] == "7" and int(checks["workers seen"]) >= 2


@pytest.mark.slow
@pytest.mark.needs_data("sst2")
def test_distillation_prints_one_row_per_model_and_export(repo, tiny_bert, small_data, tmp_path):
    out = run_bench(repo, "distillation.py", "--model", str(tiny_bert), "--data_dir", str(small_data),
                    "--student_layers", "1", "--repeat", "1", "--rounds", "1", "--work", str(tmp_path))
    (table,) = tables(out)
    precision = table[2][0].rpartition(" ")[2]  # bf16 where the CPU runs it natively, else fp32
    assert [row[0] for row in table[1:]] == [
        "pipeline(batch_size=64), teacher, fp32", f"teacher, PyTorch {precision}",
        f"distilled student, PyTorch {precision}", f"student without distillation, PyTorch {precision}",
        "distilled student, ONNX fp32", "distilled student, ONNX int8"]
    assert [row[1] for row in table[1:]] == ["2", "2", "1", "1", "1", "1"]
    assert table[5][3].startswith("100.00% (the PyTorch student")  # the fp32 export agrees with its source


def test_sentence_vector_head_reads_the_mean_of_the_unpadded_tokens(monkeypatch):
    import torch
    from transformers import RoFormerConfig, RoFormerForSequenceClassification
    from transformers.models.roformer import modeling_roformer as roformer

    from bench.sentence_vector import read_mean_of_tokens

    for cls in (roformer.RoFormerForSequenceClassification, roformer.RoFormerClassificationHead):
        monkeypatch.setattr(cls, "forward", cls.forward)  # put back after the test: the patch is process-wide
    torch.manual_seed(0)
    model = RoFormerForSequenceClassification(RoFormerConfig(
        vocab_size=30, embedding_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=2)).eval()
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 7, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        reads_cls = model(input_ids=ids, attention_mask=mask).logits
        hidden = model.roformer(input_ids=ids, attention_mask=mask)[0]
        means = torch.stack([hidden[0].mean(0), hidden[1, :3].mean(0)])  # the padding left out
        head = model.classifier
        expected = head.out_proj(roformer.ACT2FN[model.config.hidden_act](head.dense(means)))  # dropout off: eval
        read_mean_of_tokens()
        reads_mean = model(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(reads_mean, expected, atol=1e-6)
    assert not torch.allclose(reads_mean, reads_cls, atol=1e-3)


@pytest.mark.needs_data("chnsenticorp")
def test_sentence_vector_prints_each_model_with_each_head_input(repo, small_data, tmp_path):
    out = run_bench(repo, "sentence_vector.py", "--data_dir", str(small_data), "--models", "scratch", "--seeds",
                    "42", "--recipe_flags=--max_steps 2", "--work", str(tmp_path))
    (table,) = tables(out)
    assert [row[:2] for row in table[1:]] == [["scratch", "`[CLS]` (the recipe's head)"],
                                              ["scratch", "mean of the tokens"]]
    for pooling, row in zip(("cls", "mean"), table[1:]):
        run = json.loads((tmp_path / f"0-{pooling}-seed42" / "all_results.json").read_text())
        assert row[2:] == [f"{run['test_accuracy']:.4f}", f"{run['eval_accuracy']:.4f}"]


@pytest.mark.needs_data("sst2")
def test_scale_prints_the_recipe_beside_the_stock_script_for_each_size(repo, tiny_bert, small_data, tmp_path):
    out = run_bench(repo, "scale.py", "--model", str(tiny_bert), "--data_dir", str(small_data), "--rows", "300",
                    "--steps", "3", "--work", str(tmp_path))
    (table,) = tables(out)
    assert [row[1] for row in table[1:]] == ["recipe, first run", "recipe, second run (tokenization cache)",
                                             "stock Trainer + datasets", "recipe, streaming"]
    assert all(float(row[2]) > 0 and float(row[4].replace(",", "")) > 0 for row in table[1:4])
    assert (tmp_path / "rows-300.csv").read_text().count("\n") == 301
