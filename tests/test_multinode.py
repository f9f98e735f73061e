"""Two machines, as torchrun runs them, tried on one: two launchers (`--nnodes 2 --nproc_per_node 1`, c10d
rendezvous on 127.0.0.1) train to the weights of one process with the same global batch, and with
`--max_restarts 1` a worker killed with SIGKILL mid-training makes the job restart and resume from the newest
complete checkpoint (`--resume_from_checkpoint auto`), ending with exactly the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def recipe_flags(model, train, out, batch_size):
    """The sentiment recipe in order (each process takes whole batches in turn), a checkpoint every 10 steps."""
    return ["recipes/sentiment/run.py", "--model", str(model), "--train_file", str(train), "--validation_split",
            "0.25", "--num_train_epochs", "4", "--learning_rate", "3e-3", "--warmup_steps", "0",
            "--per_device_train_batch_size", str(batch_size), "--train_sampling_strategy", "sequential",
            "--bf16", "False", "--disable_tqdm", "True", "--eval_strategy", "no", "--save_strategy", "steps",
            "--save_steps", "10", "--load_best_model_at_end", "False", "--resume_from_checkpoint", "auto",
            "--output_dir", str(out)]


def launch_node(repo, port, flags, log: Path) -> subprocess.Popen:
    """One machine's launcher: torchrun with one worker, meeting the other at 127.0.0.1:port."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_conf", "timeout=120",
               "--max_restarts", "1", *flags]
    # a store of its own for each round: with the rendezvous store shared (torch's default), a restarted worker can
    # read the previous round's addresses and fail to connect (pytorch/pytorch#135712)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo), "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    return subprocess.Popen(command, cwd=repo, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_all(launchers, logs, timeout=600):
    for launcher, log in zip(launchers, logs):
        assert launcher.wait(timeout=timeout) == 0, log.read_text()[-3000:]


def worker_of(launcher: subprocess.Popen) -> int:
    """The pid of the recipe process a launcher started."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def weights(out: Path) -> dict:
    return load_file(str(out / "model.safetensors"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker in /proc")
def test_two_nodes_match_one_process_and_survive_a_killed_worker(tmp_path, tiny_bert, write_csv, sentiment_rows,
                                                                 repo):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(320))  # 240 training rows: 15 steps of 16 per epoch

    one = tmp_path / "one"
    done = subprocess.run([sys.executable, *recipe_flags(tiny_bert, train, one, 16)], cwd=repo, capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    two = tmp_path / "two"
    logs = [tmp_path / "two-node1.log", tmp_path / "two-node2.log"]
    wait_all([launch_node(repo, 29631, recipe_flags(tiny_bert, train, two, 8), log) for log in logs], logs)

    killed = tmp_path / "killed"
    logs = [tmp_path / "killed-node1.log", tmp_path / "killed-node2.log"]
    launchers = [launch_node(repo, 29632, recipe_flags(tiny_bert, train, killed, 8), log) for log in logs]
    deadline = time.monotonic() + 300
    while not (killed / ".incoming" / "checkpoint-20" / "checkpoint_complete.json").is_file():
        assert time.monotonic() < deadline and all(p.poll() is None for p in launchers), logs[0].read_text()[-3000:]
        time.sleep(0.2)
    os.kill(worker_of(launchers[1]), signal.SIGKILL)  # the second machine's worker, mid-training
    wait_all(launchers, logs)

    restarted = [log.read_text() for log in logs]
    assert all("Resuming from" in text and "checkpoint-" in text.split("Resuming from")[1] for text in restarted)
    assert "exitcode: -9" in restarted[1]
    assert json.loads((killed / "all_results.json").read_text())["world_size"] == 2
    uninterrupted, resumed, single = weights(two), weights(killed), weights(one)
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)
    # the same rows in every step: equal up to the order of the sums
    assert max((uninterrupted[k] - single[k]).abs().max().item() for k in single) < 1e-3
    results = [json.loads((out / "all_results.json").read_text()) for out in (one, two, killed)]
    assert results[0]["eval_accuracy"] == results[1]["eval_accuracy"] >= 0.9
    assert results[0]["train_loss"] == pytest.approx(results[1]["train_loss"], rel=1e-3)
    # resumed, train_loss still covers the whole run (the losses before the checkpoint saved as a mean over processes)
    assert results[2]["train_loss"] == pytest.approx(results[1]["train_loss"], rel=1e-6)
