"""The sentiment recipe unchanged under `torchrun --nproc_per_node 2` on CPU (gloo), against one process."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.needs_data("sst2")]


def run(command, out, batch_size, minilm, shared_data, repo):
    flags = ["recipes/sentiment/run.py", "--model", str(minilm), "--data_dir", str(shared_data),
             "--output_dir", str(out), "--max_train_samples", "3000", "--num_train_epochs", "1",
             "--disable_tqdm", "True", "--bf16", "False", "--per_device_train_batch_size", str(batch_size)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
    done = subprocess.run(command + flags, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "all_results.json").read_text()), done.stderr


def test_two_processes_with_the_same_global_batch_match_one_process(tmp_path, minilm, shared_data, repo):
    single, _ = run([sys.executable], tmp_path / "one", 32, minilm, shared_data, repo)
    double, log = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                       "29533"], tmp_path / "two", 16, minilm, shared_data, repo)  # same global batch: 2 x 16
    assert single["world_size"] == 1 and double["world_size"] == 2
    assert abs(single["eval_accuracy"] - double["eval_accuracy"]) <= 0.01, (single["eval_accuracy"], double["eval_accuracy"])
    # the losses are means over the same examples, not multiplied by the number of processes
    assert double["eval_loss"] == pytest.approx(single["eval_loss"], rel=0.15), (single["eval_loss"], double["eval_loss"])
    assert double["train_loss"] == pytest.approx(single["train_loss"], rel=0.15), (single["train_loss"], double["train_loss"])
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
