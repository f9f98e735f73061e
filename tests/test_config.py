"""Config files, command-line overrides, the choice between a benchmark's config and the recipe's default."""

import pytest

from common.config import parsing
from common.config.arguments import ModelArguments, RecipeTrainingArguments, TextDataArguments
from common.config.errors import OptionError
from common.config.parsing import parse_args

TYPES = (ModelArguments, TextDataArguments, RecipeTrainingArguments)


def write(path, text):
    path.write_text(text)
    return str(path)


def test_config_file_values_and_command_line_overrides(tmp_path):
    config = write(tmp_path / "c.yaml", "model: some/model\nlearning_rate: 1.0e-4\nnum_train_epochs: 2\n"
                                        "benchmark: sst2\nreport_to: [none]\nbf16: false\n")
    model_args, data_args, training_args, settings = parse_args(
        TYPES, ["--config", config, "--learning_rate", "3e-5", "--output_dir", str(tmp_path / "out")])
    assert model_args.model_name_or_path == "some/model"  # `model` is the short form in files too
    assert training_args.learning_rate == 3e-5  # the command line wins
    assert training_args.num_train_epochs == 2.0
    assert data_args.benchmark == "sst2"
    assert training_args.train_sampling_strategy == "group_by_length"  # our default, not Trainer's "random"
    assert settings.config_file == config
    assert settings.values["learning_rate"] == 3e-5 and settings.values["model_name_or_path"] == "some/model"
    assert "warmup_steps" not in settings.values  # only what was given


def test_default_config_and_model_short_flag(tmp_path):
    config = write(tmp_path / "default.yaml", "model_name_or_path: from/config\nper_device_train_batch_size: 16\n")
    model_args, _, training_args, _ = parse_args(TYPES, ["--model", "from/cli", "--bf16", "False"],
                                                 default_config=config)
    assert model_args.model_name_or_path == "from/cli"
    assert training_args.per_device_train_batch_size == 16
    assert training_args.bf16 is False


def test_a_benchmark_config_applies_only_to_its_benchmark(tmp_path):
    benchmark = write(tmp_path / "ag_news.yaml", "benchmark: ag_news\ntest_split: 0.1\nnum_train_epochs: 2\n")
    default = write(tmp_path / "default.yaml", "num_train_epochs: 3\n")

    def chosen(*argv):
        *_, settings = parse_args(TYPES, list(argv), benchmark_config=benchmark, default_config=default)
        return settings.config_file

    assert chosen() == benchmark  # no data named: the recipe's benchmark
    assert chosen("--benchmark", "ag_news") == chosen("--benchmark=ag_news") == benchmark
    assert chosen("--train_file", "mine.csv") == default  # the user's own data: no benchmark settings
    assert chosen("--dataset_name", "stanfordnlp/imdb") == default
    assert chosen("--benchmark", "sst2") == default  # another benchmark: not AG News's settings either
    assert chosen("--config", benchmark, "--train_file", "mine.csv") == benchmark  # asked for explicitly
    _, data_args, training_args, _ = parse_args(TYPES, ["--train_file", "mine.csv"], benchmark, default)
    assert data_args.test_split == 0.0 and training_args.num_train_epochs == 3


@pytest.mark.parametrize("name", ["sentiment", "text_classification", "ner", "chinese_ernie", "pretraining"])
def test_every_config_of_a_recipe_parses_into_its_arguments(name, recipe):
    module = recipe(name)
    configs = sorted(module.CONFIGS.glob("*.yaml"))
    assert module.CONFIGS / "default.yaml" in configs
    for config in configs:  # an unknown key would stop here, naming the file
        parse_args(module.ARGUMENTS, ["--config", str(config)])


@pytest.mark.parametrize("text, flags, trains", [
    ("train_file: t.csv\n", [], True),  # a config of one's own that names training data trains
    ("train_file: t.csv\ndo_train: false\n", [], False),
    ("train_file: t.csv\n", ["--do_train", "False"], False),
    ("test_file: t.csv\n", [], False),  # prediction alone, with a trained model
])
def test_a_config_naming_training_data_trains_unless_told_not_to(tmp_path, text, flags, trains):
    config = write(tmp_path / "mine.yaml", "model: m\n" + text)
    *_, training_args, _ = parse_args(TYPES, ["--config", config, "--output_dir", str(tmp_path / "o"), *flags])
    assert training_args.do_train is trains


def test_json_config(tmp_path):
    config = write(tmp_path / "c.json", '{"text_column": "sentence", "max_seq_length": 64}')
    _, data_args, _, _ = parse_args(TYPES, ["--config", config])
    assert (data_args.text_column, data_args.max_seq_length) == ("sentence", 64)


def test_unknown_config_key_names_the_file(tmp_path):
    config = write(tmp_path / "bad.yaml", "learning_rat: 0.1\n")
    with pytest.raises(OptionError, match=r"bad.yaml: unknown setting 'learning_rat'"):
        parse_args(TYPES, ["--config", config])


def test_missing_config_file(tmp_path):
    with pytest.raises(OptionError, match="config file not found"):
        parse_args(TYPES, ["--config", str(tmp_path / "nope.yaml")])


def test_bf16_follows_hardware_unless_given(monkeypatch):
    monkeypatch.setattr(parsing, "bf16_supported", lambda: False)
    assert parse_args(TYPES, [])[2].bf16 is False
    monkeypatch.setattr(parsing, "bf16_supported", lambda: True)
    training_args = parse_args(TYPES, [])[2]
    assert training_args.bf16 is True and training_args.use_cpu is True  # bf16 on a CPU needs use_cpu
    assert parse_args(TYPES, ["--bf16", "False"])[2].bf16 is False  # an explicit choice is kept


@pytest.mark.parametrize("argv, message", [
    (["--learning_speed", "3e-5"], r"Some specified arguments are not used.*--learning_speed.*\(in the command line\)"),
    (["--validation_split", "1.5"], r"--validation_split 1.5 must be at least 0 and below 1"),
    (["--validation_split", "0.5", "--test_split", "0.5"], r"leave no training rows"),
    (["--load_best_model_at_end", "True", "--eval_strategy", "epoch", "--save_strategy", "steps"], r"save_strategy"),
])
def test_bad_options_are_option_errors_naming_the_option(argv, message):
    with pytest.raises(OptionError, match=message):
        parse_args(TYPES, argv)


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(OptionError, match=r"--output_dir .*out is a file, not a folder"):
        parse_args(TYPES, ["--output_dir", str(tmp_path / "out")])


def test_a_config_file_that_is_not_yaml_names_its_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("learning_rate: 2e-5\nseed: [1, 2\n")
    with pytest.raises(OptionError, match=r"bad.yaml, line 3: not a valid config file"):
        parse_args(TYPES, ["--config", str(tmp_path / "bad.yaml")])


def test_config_given_with_an_equals_sign(tmp_path):
    config = write(tmp_path / "c.yaml", "learning_rate: 1.0e-4\nbf16: false\n")
    _, _, training_args, settings = parse_args(TYPES, [f"--config={config}", "--output_dir", str(tmp_path / "o")])
    assert training_args.learning_rate == 1e-4 and settings.config_file == config
    with pytest.raises(OptionError, match="--config needs a file name"):
        parse_args(TYPES, ["--config=", "--output_dir", str(tmp_path / "o")])


def test_without_training_a_configs_training_settings_do_not_apply(tmp_path):
    config = write(tmp_path / "c.yaml", "do_train: true\neval_strategy: epoch\nsave_strategy: epoch\n"
                                        "load_best_model_at_end: true\nmetric_for_best_model: accuracy\n"
                                        "learning_rate: 1.0e-4\ndo_eval: true\nbf16: false\n")
    _, _, training_args, settings = parse_args(
        TYPES, ["--config", config, "--do_train", "False", "--test_file", "x.csv", "--output_dir", str(tmp_path / "o")])
    assert not training_args.load_best_model_at_end and training_args.eval_strategy == "no"
    assert training_args.do_predict and not training_args.do_eval  # a test file named, no validation data
    assert "learning_rate" not in settings.values  # run_config.yaml says what applied
    _, _, training_args, _ = parse_args(
        TYPES, ["--config", config, "--do_train", "False", "--validation_file", "d.csv", "--output_dir", str(tmp_path / "o")])
    assert training_args.do_eval and not training_args.do_predict
    # what the command line gives still applies
    _, _, training_args, _ = parse_args(
        TYPES, ["--config", config, "--do_train", "False", "--do_eval", "False", "--per_device_eval_batch_size", "3",
                "--output_dir", str(tmp_path / "o")])
    assert not training_args.do_eval and training_args.per_device_eval_batch_size == 3


@pytest.mark.parametrize("flags, message", [(["--max_steps", "0"], "--max_steps 0 trains for 0 steps"),
                                            (["--max_steps", "-5"], "--max_steps -5 trains for 0 steps")])
def test_max_steps_that_train_nothing_are_refused(tmp_path, flags, message):
    with pytest.raises(OptionError, match=message):
        parse_args(TYPES, ["--do_train", "True", *flags, "--output_dir", str(tmp_path / "o")])


@pytest.mark.parametrize("name", ["sentiment", "chinese_ernie"])
@pytest.mark.parametrize("flags", [["--multi_label", "True"], ["--label_separator", "|"]])
def test_single_label_recipes_refuse_the_multi_label_flags(tmp_path, recipe, name, flags):
    with pytest.raises(OptionError, match=r"this recipe trains single-label classifiers; use recipes/text_classification"):
        parse_args(recipe(name).ARGUMENTS, [*flags, "--train_file", "t.csv", "--output_dir", str(tmp_path / "o")])


@pytest.mark.parametrize("recipe_name, flags, message", [
    ("ner", ["--crf", "True", "--label_all_tokens", "True"], "does not combine with --label_all_tokens"),
    ("ner", ["--crf", "True", "--class_weights", "balanced"], "--class_weights and --crf do not combine"),
    ("ner", ["--crf", "True", "--lora_r", "4"], "--crf and --lora_r do not combine"),
    ("sentiment", ["--pack_batches", "True"], "--pack_batches packs the sentences of token-labelled data"),
    ("text_classification", ["--explain_examples", "2", "--do_eval", "False", "--eval_strategy", "no",
                             "--load_best_model_at_end", "False"], "--explain_examples explains validation texts"),
    ("text_classification", ["--group_column", "g", "--do_eval", "False", "--eval_strategy", "no",
                             "--load_best_model_at_end", "False"], "--group_column scores predictions by group"),
    ("text_classification", ["--long_text", "windows", "--remove_unused_columns", "False"],
     "--long_text windows needs --remove_unused_columns True"),
    ("ner", ["--window_pooling", "max"], "--window_pooling belongs to TextDataArguments .*this recipe does not take it"),
    ("sentiment", ["--crf_learning_rate", "0.01"], "--crf_learning_rate sets the CRF's learning rate: it needs --crf"),
    ("ner", ["--crf_learning_rate", "0.01"], "it needs --crf"),
    ("ner", ["--cv_checkpoint_selection", "validation"], "--cv_checkpoint_selection .* it needs --cv_folds"),
])
def test_options_that_do_not_combine_are_refused_when_parsed(recipe, recipe_name, flags, message, tmp_path):
    module = recipe(recipe_name)
    with pytest.raises(OptionError, match=message):
        parse_args(module.ARGUMENTS, ["--train_file", "t.csv", "--output_dir", str(tmp_path / "o"), *flags],
                   module.BENCHMARK_CONFIG, module.CONFIGS / "default.yaml")
