"""The help defaults of `yoso pretrain` and `yoso finetune` are TrainConfig's field defaults."""

from __future__ import annotations

import dataclasses

from typer.testing import CliRunner

from yoso_cli.main import app
from yoso_cli.options import TRAIN_DEFAULTS, default, show
from yoso_core.training.config import TrainConfig


def test_train_defaults_are_the_dataclass_defaults():
    expected = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert TRAIN_DEFAULTS == expected


def test_show_writes_small_floats_in_exponent_form():
    assert [show(1e-4), show(0.01), show(1.0), show(8000), show("fp32")] == [
        "1e-4",
        "0.01",
        "1.0",
        "8000",
        "fp32",
    ]


def test_help_shows_the_generated_defaults():
    for command in ("pretrain", "finetune"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        for name in ("learning_rate", "max_steps", "batch_size", "seed"):
            assert default(name) in text, (command, name)
