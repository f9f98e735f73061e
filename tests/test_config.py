import pytest

from common.config import parse_args


def write(path, text):
    path.write_text(text)
    return str(path)


def test_config_file_values_and_command_line_overrides(tmp_path):
    config = write(tmp_path / "c.yaml", "model: some/model\nlearning_rate: 1.0e-4\nnum_train_epochs: 2\n"
                                        "benchmark: sst2\nreport_to: [none]\nbf16: false\n")
    model_args, data_args, training_args = parse_args(argv=["--config", config, "--learning_rate", "3e-5",
                                                            "--output_dir", str(tmp_path / "out")])
    assert model_args.model_name_or_path == "some/model"  # `model` is the short form in files too
    assert training_args.learning_rate == 3e-5  # the command line wins
    assert training_args.num_train_epochs == 2.0
    assert data_args.benchmark == "sst2"
    assert training_args.train_sampling_strategy == "group_by_length"  # our default, not Trainer's "random"


def test_default_config_and_model_short_flag(tmp_path):
    config = write(tmp_path / "default.yaml", "model_name_or_path: from/config\nper_device_train_batch_size: 16\n")
    model_args, _, training_args = parse_args(config, ["--model", "from/cli", "--bf16", "False"])
    assert model_args.model_name_or_path == "from/cli"
    assert training_args.per_device_train_batch_size == 16
    assert training_args.bf16 is False


def test_json_config(tmp_path):
    config = write(tmp_path / "c.json", '{"text_column": "sentence", "max_seq_length": 64}')
    _, data_args, _ = parse_args(argv=["--config", config])
    assert (data_args.text_column, data_args.max_seq_length) == ("sentence", 64)


def test_unknown_config_key_names_the_file(tmp_path):
    config = write(tmp_path / "bad.yaml", "learning_rat: 0.1\n")
    with pytest.raises(SystemExit, match=r"bad.yaml: unknown setting 'learning_rat'"):
        parse_args(argv=["--config", config])


def test_missing_config_file(tmp_path):
    with pytest.raises(SystemExit, match="config file not found"):
        parse_args(argv=["--config", str(tmp_path / "nope.yaml")])


def test_bf16_follows_hardware_unless_given(tmp_path, monkeypatch):
    import common.config as config_module

    monkeypatch.setattr(config_module, "bf16_supported", lambda: False)
    assert parse_args(argv=[])[2].bf16 is False
    monkeypatch.setattr(config_module, "bf16_supported", lambda: True)
    training_args = parse_args(argv=[])[2]
    assert training_args.bf16 is True and training_args.use_cpu is True  # bf16 on a CPU needs use_cpu
    assert parse_args(argv=["--bf16", "False"])[2].bf16 is False  # an explicit choice is kept
