"""Every command's defaults are the library's: TrainConfig's (pretrain, finetune), ConvertOptions'
(convert), BenchConfig's (bench) and ``predict``'s parameters (predict), read one way."""

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


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_library_defaults_read_classes_fields_and_functions_parameters():
    import inspect

    from yoso_cli.defaults import library_defaults
    from yoso_core.bench.config import BenchConfig
    from yoso_core.convert.options import ConvertOptions
    from yoso_core.predict import predict

    for module, cls in (("convert/options.py", ConvertOptions), ("bench/config.py", BenchConfig)):
        expected = dataclasses.asdict(cls())
        assert library_defaults(module, cls.__name__) == expected, cls.__name__
    expected = {
        name: p.default
        for name, p in inspect.signature(predict).parameters.items()
        if p.default is not p.empty
    }
    assert library_defaults("predict.py", "predict") == expected


def test_every_commands_options_default_to_the_library_constants():
    """What each command's parameters default to, and what its ``--help`` says, is the library's."""
    import inspect

    from yoso_cli.commands import bench, convert, predict
    from yoso_core.bench.config import BenchConfig
    from yoso_core.convert.options import ConvertOptions
    from yoso_core.predict import predict as predict_fn

    convert_params = inspect.signature(convert.command).parameters
    for field in dataclasses.fields(ConvertOptions):
        if field.name in convert_params:
            assert convert_params[field.name].default.default == field.default, field.name
    bench_params = inspect.signature(bench.command).parameters
    bench_default = BenchConfig()
    assert bench_params["batch"].default.default == bench_default.batch
    assert f"default {' '.join(map(str, bench_default.seq_len))}." in _help("bench")
    library = inspect.signature(predict_fn).parameters
    text = _help("predict")
    for name in ("batch_size", "device"):
        assert f"(default: {library[name].default})" in text, name
    assert predict.DEFAULTS["batch_size"] == library["batch_size"].default


def test_predict_without_batch_size_runs_with_the_library_default(monkeypatch, tmp_path):
    """The batch size a run takes when ``--batch-size`` is not given is ``predict``'s own default."""
    import inspect

    import yoso_core.predict as core_predict

    library = inspect.signature(core_predict.predict).parameters["batch_size"].default
    seen = {}

    def fake_predict(predictor, lines, batch_size, *args, **kwargs):
        seen["batch_size"] = batch_size
        return iter(())

    monkeypatch.setattr(core_predict, "load_predictor", lambda model, device: object())
    monkeypatch.setattr(core_predict, "predict", fake_predict)
    source = tmp_path / "in.jsonl"
    source.write_text("{}\n")
    result = CliRunner().invoke(app, ["predict", "--model", str(tmp_path), "--input", str(source)])
    assert result.exit_code == 0, result.output
    assert seen["batch_size"] == library
