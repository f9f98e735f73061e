"""`--time_budget`: the schedule follows the share of the time spent, and training stops with a save at the budget."""

import json

import pytest

from common.config.arguments import parse_duration
from common.config.process import run_main
from common.training.time_budget import budget_factor


def test_durations_are_read_in_seconds_minutes_and_hours():
    assert [parse_duration(text) for text in ("90s", "30m", "1.5h", "45")] == [90, 1800, 5400, 45]
    for bad in ("0m", "-3s", "ten minutes", "5d"):
        with pytest.raises(ValueError, match=rf"--time_budget {bad}: give a duration above 0"):
            parse_duration(bad)


def test_the_schedule_is_the_step_schedule_over_the_share_of_time_spent():
    linear = [budget_factor(spent, 0.1, "linear") for spent in (0, 0.05, 0.1, 0.55, 1, 1.5)]
    assert linear == pytest.approx([0, 0.5, 1, 0.5, 0, 0])
    assert [budget_factor(spent, 0, "cosine") for spent in (0, 0.5, 1)] == pytest.approx([1, 0.5, 0])
    assert budget_factor(0.7, 0.1, "constant") == 1


def test_a_budgeted_run_stops_at_its_budget_with_a_complete_save(tmp_path, tiny_bert, write_csv, sentiment_rows,
                                                                 recipe):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(96))
    out = tmp_path / "out"
    recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--output_dir", str(out),
                              "--time_budget", "3s", "--num_train_epochs", "100000", "--learning_rate", "1e-3",
                              "--warmup_steps", "0", "--logging_steps", "1", "--eval_strategy", "no",
                              "--save_strategy", "steps", "--save_steps", "100000", "--load_best_model_at_end", "False",
                              "--bf16", "False", "--disable_tqdm", "True"])
    results = json.loads((out / "all_results.json").read_text())
    budget = results["time_budget"]
    assert budget["seconds"] == 3 and budget["stopped_by_budget"] and budget["share_spent"] >= 1
    assert 0 < budget["steps"] < 100000 * 5  # stopped by the clock, long before the epochs would end
    assert (out / "model.safetensors").is_file() and "eval_accuracy" in results
    assert (out / f"checkpoint-{budget['steps']}" / "checkpoint_complete.json").is_file()  # saved as it stopped
    rates = [e["learning_rate"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"]
             if "learning_rate" in e]
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0] <= 1e-3  # falling with the time spent


@pytest.mark.parametrize("flags, message", [
    (["--time_budget", "soon"], "--time_budget soon: give a duration above 0"),
    (["--time_budget", "1m", "--lr_scheduler_type", "polynomial"], "with --lr_scheduler_type linear, cosine, constant"),
    (["--time_budget", "1m", "--resume_from_checkpoint", "True"], "--time_budget and --resume_from_checkpoint do not"),
])
def test_a_budget_that_cannot_hold_is_one_line(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe, capsys, flags,
                                               message):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(16))
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train),
                                                   "--output_dir", str(tmp_path / "out"), *flags]))
    assert stopped.value.code == 2 and message in capsys.readouterr().err
