"""TrainConfig: defaults -> YAML -> command line, validation messages that name the flag, saving."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from yoso_core.training import (
    FINETUNE_TASKS,
    ConfigError,
    TrainConfig,
    merge_config,
    read_yaml,
    save_config,
)


def test_merge_order_defaults_then_yaml_then_command_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("max-steps: 7\nlearning_rate: 0.003\nseq_len: 32\nattention: sampled\n")
    config = merge_config(path, {"max_steps": 9, "seq_len": None, "batch_size": None}, task="qa")
    assert config.max_steps == 9  # command line beats YAML
    assert config.learning_rate == 0.003  # YAML beats the default
    assert config.seq_len == 32  # None on the command line means "not given"
    assert config.batch_size == TrainConfig().batch_size
    assert config.attention == "sampled"
    assert config.task == "qa"


def test_yaml_int_accepted_for_float_and_saved_config_round_trips(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 1\nweight_decay: 0\n")
    config = merge_config(path, {"model": "tiny"}, task="mlm")
    assert isinstance(config.learning_rate, float) and config.learning_rate == 1.0
    saved = tmp_path / "config.yaml"
    save_config(config, saved)
    assert yaml.safe_load(saved.read_text())["model"] == "tiny"
    assert merge_config(saved) == config


def test_yaml_numbers_in_exponent_form_are_accepted(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3 and 1e3, which have no dot, as strings
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 1e-3\nadam_epsilon: 1E-6\nmax_steps: 1e3\nwarmup_steps: '20'\n")
    values = read_yaml(path)
    assert values["learning_rate"] == 1e-3 and isinstance(values["learning_rate"], float)
    assert values["adam_epsilon"] == 1e-6
    assert values["max_steps"] == 1000 and isinstance(values["max_steps"], int)
    assert values["warmup_steps"] == 20
    config = merge_config(path, task="mlm")
    assert config.learning_rate == 1e-3 and config.max_steps == 1000


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_steps: 1.5e0\n", "`max_steps` must be int, got '1.5e0'"),
        ("learning_rate: fast\n", "`learning_rate` must be float, got 'fast'"),
        ("learning_rate: 'inf'\n", "`learning_rate` must be float, got 'inf'"),
    ],
)
def test_non_numbers_and_fractions_for_int_are_still_refused(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        merge_config(path, task="mlm")


def test_unknown_yaml_key_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("max_steps: 3\nlearnin_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'learnin_rate'"):
        read_yaml(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_steps: ten\n", "`max_steps` must be int"),
        ("use_expectation: 1\n", "`use_expectation` must be bool"),
        ("hash_code_len: many\n", "hash_code_len must be an integer or 'auto'"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("a: [1\n", "not valid YAML"),
    ],
)
def test_bad_yaml_values(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_yaml(path)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="--config: file .* does not exist"):
        merge_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "options, flag",
    [
        ({"max_steps": 0}, "--max-steps"),
        ({"batch_size": -1}, "--batch-size"),
        ({"seq_len": 4}, "--seq-len"),
        ({"learning_rate": 0.0}, "--learning-rate"),
        ({"precision": "fp16"}, "--precision"),
        ({"device": "tpu"}, "--device"),
        ({"num_hash": 0}, "--num-hash"),
        ({"hash_code_len": 17}, "--hash-code-len"),
        ({"conv_window": 4}, "--conv-window"),
        ({"dropout": 1.5}, "--dropout"),
        ({"model": "huge"}, "--model 'huge'"),
        ({"train_file": "/nonexistent.jsonl"}, "--train-file"),
        ({"validation_file": "/nonexistent.jsonl"}, "--validation-file"),
        ({"resume": "/nonexistent"}, "--resume"),
        ({"dataset_config": "x"}, "--dataset-config needs --dataset"),
        ({"task": "translation"}, "--task"),
        ({"warmup_steps": -3}, "--warmup-steps"),
        ({"gradient_accumulation_steps": 0}, "--gradient-accumulation-steps"),
    ],
)
def test_validation_names_the_flag(options, flag):
    with pytest.raises(ConfigError, match=flag.replace("-", r"\-")):
        merge_config(None, options)


def test_fixed_value_conflicting_with_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: qa\n")
    with pytest.raises(ConfigError, match="task"):
        merge_config(path, {}, task="mlm")


def test_tasks_need_a_task_of_the_caller(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: mlm\n")
    with pytest.raises(ConfigError, match=r"--task must be one of .* \(use `yoso pretrain` for mlm\)"):
        merge_config(path, {}, tasks=FINETUNE_TASKS)
    with pytest.raises(ConfigError, match="--task is required"):
        merge_config(None, {"model": "tiny"}, tasks=FINETUNE_TASKS)
    assert merge_config(path, {"task": "qa"}, tasks=FINETUNE_TASKS).task == "qa"  # the command line wins


@pytest.mark.parametrize("task", ["mlm", "qa", "token-classification"])
def test_output_dir_and_warmup_defaults_follow_the_task_and_max_steps(task):
    """Unset, --output-dir is runs/<task> and --warmup-steps 10% of --max-steps; given, they win."""
    config = merge_config(None, {"max_steps": 250}, task=task)
    assert (config.output_dir, config.warmup_steps) == (None, None)  # "not given" until resolved
    assert config.resolved_output_dir() == Path("runs", task)
    assert config.resolved_warmup_steps() == 25
    assert merge_config(None, {"max_steps": 9}, task=task).resolved_warmup_steps() == 0
    given = merge_config(None, {"max_steps": 250, "warmup_steps": 0, "output_dir": "out/x"}, task=task)
    assert (given.resolved_warmup_steps(), given.resolved_output_dir()) == (0, Path("out/x"))
    assert TrainConfig(task=task).resolved_warmup_steps() == TrainConfig.max_steps // 10


def test_seq_len_defaults_to_the_model_directory_length(tmp_path):
    """Fine-tuning a saved model without --seq-len uses its max_position_embeddings, not 512."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "yoso", "max_position_embeddings": 128}')
    assert merge_config(None, {"model": str(model_dir)}, task="qa").seq_len == 128
    assert merge_config(None, {"model": str(model_dir), "seq_len": 64}, task="qa").seq_len == 64
    assert merge_config(None, {"model": "tiny"}, task="qa").seq_len == 512
