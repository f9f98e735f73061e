"""The sentiment recipe unchanged under `torchrun --nproc_per_node 2` on CPU (gloo), against one process (a tiny
BERT: the losses' agreement is what is measured; tests/test_integration.py shows MiniLM learning SST-2)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def run(command, out, batch_size, model, train, repo):
    flags = ["recipes/sentiment/run.py", "--model", str(model), "--train_file", str(train), "--validation_split", "0.2",
             "--output_dir", str(out), "--num_train_epochs", "8", "--learning_rate", "3e-3", "--warmup_steps", "0",
             "--train_sampling_strategy", "sequential", "--disable_tqdm", "True", "--bf16", "False",
             "--logging_steps", "1", "--per_device_train_batch_size", str(batch_size)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
    done = subprocess.run(command + flags, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return json.loads((out / "all_results.json").read_text()), [e["loss"] for e in steps if "loss" in e], done.stderr


def test_two_processes_with_the_same_global_batch_match_one_process(tmp_path, tiny_bert, write_csv, sentiment_rows,
                                                                    repo):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(320))
    single, single_losses, _ = run([sys.executable], tmp_path / "one", 32, tiny_bert, train, repo)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    double, double_losses, log = run(torchrun, tmp_path / "two", 16, tiny_bert, train, repo)  # same global batch: 2 x 16
    assert single["world_size"] == 1 and double["world_size"] == 2
    assert single["sizes"] == double["sizes"] == {"train": 256, "validation": 64}
    # in order, each process takes whole batches of 16 in turn: each step sees the same 32 rows as one process's step
    # (256 rows: no batch is padded; fp32, no dropout), so the step losses agree up to the order of the sums
    # (which Adam's steps then amplify);
    # they are means over the same rows, not multiplied by the number of processes
    assert len(single_losses) == len(double_losses) == 64
    assert double_losses[:8] == pytest.approx(single_losses[:8], rel=1e-4)
    assert single["eval_accuracy"] >= 0.9 and abs(single["eval_accuracy"] - double["eval_accuracy"]) <= 1 / 64
    for loss in ("eval_loss", "train_loss"):
        assert double[loss] == pytest.approx(single[loss], rel=0.05), (loss, single[loss], double[loss])
    assert log.count("Results written to") == 1  # only the main process writes outputs
    assert log.count("Model card written to") == 1
    assert (tmp_path / "two" / "model.safetensors").is_file() and (tmp_path / "two" / "README.md").is_file()


GLOO_THREADS_AT_EXIT = """
import atexit, os, runpy, sys

def gloo_threads():  # what is left of the process group once the recipe has returned
    names = []
    for thread in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{thread}/comm").read().strip())
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    # one write of the whole line: the two ranks share stderr, and print() writes its parts apart
    os.write(2, f"gloo threads at exit: {sum('gloo' in name for name in names)}\\n".encode())

atexit.register(gloo_threads)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads thread names in /proc")
def test_a_torchrun_rank_ends_its_gloo_threads_before_python_shuts_down(tmp_path, tiny_bert, write_csv,
                                                                        sentiment_rows, repo):
    # left to interpreter shutdown, gloo's threads can abort a finished rank (SIGABRT, "terminate called without
    # an active exception") although its work was done: the recipe must end them while Python still runs
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(GLOO_THREADS_AT_EXIT)
    train = write_csv(tmp_path / "train.csv", sentiment_rows(64))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29562",
         str(wrapper), "recipes/sentiment/run.py", "--model", str(tiny_bert), "--train_file", str(train),
         "--validation_split", "0", "--do_eval", "False", "--eval_strategy", "no", "--save_strategy", "no",
         "--load_best_model_at_end", "False", "--max_steps", "2", "--per_device_train_batch_size", "8",
         "--bf16", "False", "--disable_tqdm", "True", "--output_dir", str(tmp_path / "out")],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("gloo threads at exit: 0") == 2, done.stderr[-3000:]
