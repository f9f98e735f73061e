"""The accelerate configs in recipes/accelerate_configs/, and a recipe under `accelerate launch` on CPU.

Without a GPU only the single-process launch can run here (accelerate applies DDP, DeepSpeed and FSDP
to GPU-type devices only), so the other configs are read by accelerate's own launcher code and the
settings it would hand to the training processes are checked.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_multi_gpu_env
from torch.distributed.fsdp import StateDictType
from transformers import TrainingArguments

from common.config.hardware import bf16_supported, precision_name

CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "accelerate_configs"


def launch_settings(name):
    """What `accelerate launch --config_file <name>.yaml` makes of the file: its arguments and the config."""
    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / f"{name}.yaml"), "recipes/sentiment/run.py"])
    args, config, _ = _validate_launch_command(args)
    return args, config


@pytest.mark.parametrize("name, kind, processes", [("single_gpu", "NO", 1), ("multi_gpu", "MULTI_GPU", 2),
                                                   ("deepspeed_zero2", "DEEPSPEED", 2), ("fsdp", "FSDP", 2)])
def test_each_config_sets_up_what_its_name_says(name, kind, processes):
    args, config = launch_settings(name)
    assert config.distributed_type == kind and args.num_processes == processes
    # Precision is the recipe's (--bf16/--fp16), so all_results.json names the precision really used
    assert args.mixed_precision == "no"


def test_deepspeed_config_matches_the_trainer_defaults():
    _, config = launch_settings("deepspeed_zero2")
    defaults = TrainingArguments(output_dir="unused", use_cpu=True)
    assert config.deepspeed_config["zero_stage"] == 2
    assert config.deepspeed_config["gradient_accumulation_steps"] == defaults.gradient_accumulation_steps
    assert config.deepspeed_config["gradient_clipping"] == defaults.max_grad_norm


def test_fsdp_config_wraps_layers_and_saves_an_ordinary_checkpoint(monkeypatch):
    args, _ = launch_settings("fsdp")
    for key, value in prepare_multi_gpu_env(args).items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()  # built from the environment, as in the launched processes
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT  # what pipeline() loads


def test_precision_names_what_trainer_runs(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert precision_name(TrainingArguments(output_dir="unused", use_cpu=True)) == "fp32"
    assert precision_name(TrainingArguments(output_dir="unused", use_cpu=True, bf16=True)) == "bf16"
    # accelerate launch's mixed_precision reaches Trainer through the environment when the flags are off
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert precision_name(TrainingArguments(output_dir="unused", use_cpu=True)) == "bf16"


def test_sentiment_recipe_runs_under_accelerate_launch(tmp_path, tiny_bert, write_csv, sentiment_rows, repo, recipe):
    rows = sentiment_rows(120, seed=3)
    write_csv(tmp_path / "train.csv", rows[:100])
    write_csv(tmp_path / "dev.csv", rows[100:])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "single_gpu.yaml"),
               "recipes/sentiment/run.py", "--model", str(tiny_bert), "--train_file", str(tmp_path / "train.csv"),
               "--validation_file", str(tmp_path / "dev.csv"), "--output_dir", str(out), "--num_train_epochs", "1",
               "--disable_tqdm", "True"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "all_results.json").read_text())
    assert results["world_size"] == 1 and results["sizes"] == {"train": 100, "validation": 20}
    assert results["precision"] == ("bf16" if bf16_supported() else "fp32")
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    # accelerate launch gives a CPU-only process one thread; the recipe says so when cores go unused
    starved = "--num_cpu_threads_per_process" in done.stderr
    assert starved == ((os.cpu_count() or 1) > 1), done.stderr[-2000:]
