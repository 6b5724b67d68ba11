"""`yoso predict` and ``yoso_core.predict``: every task, order, ids, streaming, errors, empty input."""

from __future__ import annotations

import json

import pytest
from helpers import invoke

from yoso_core.data import DataError, load_task_data
from yoso_core.predict import PredictError, load_predictor, predict
from yoso_core.training import merge_config, train

OUTPUT_KEYS = {
    "classification": {"label", "score"},
    "token-classification": {"tokens", "tags", "entities"},
    "qa": {"answer", "start", "end", "score"},
    "multiple-choice": {"choice", "scores"},
    "mlm": {"fills"},
}


pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """A tiny model of every task, trained for two steps (enough to exercise the whole path)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for task in OUTPUT_KEYS:
        config = merge_config(
            None,
            {
                "model": "tiny",
                "seq_len": 64,
                "num_train": 12,
                "num_validation": 2,
                "max_steps": 2,
                "batch_size": 4,
                "eval_every": 0,
                "save_every": 0,
                "output_dir": str(root / task),
                "use_expectation": task
                != "qa",  # one sampled-YOSO model: predictions must still be repeatable
            },
            task=task,
        )
        out[task] = train(config).final_dir
    return out


def inputs(task: str, count: int) -> list[str]:
    """``count`` predict input lines of ``task``: built-in validation records without their labels."""
    records = load_task_data(task, seed=5, seq_len=64, num_train=1, num_validation=count)["validation"]
    lines = []
    for i, record in enumerate(records):
        if task == "mlm":
            words = record["text"].split()[:12]
            words[3] = "<mask>"
            record = {"text": " ".join(words)}
        record = {k: v for k, v in record.items() if k not in ("label", "tags", "answers")}
        lines.append(json.dumps({"id": f"r{i}", **record}))
    return lines


@pytest.mark.parametrize("task", list(OUTPUT_KEYS))
def test_predict_every_task_keeps_order_and_ids(models, task):
    lines = inputs(task, 5)
    outputs = list(predict(models[task], lines, batch_size=2))
    assert [o["id"] for o in outputs] == [f"r{i}" for i in range(5)]
    for line, out in zip(lines, outputs):
        assert OUTPUT_KEYS[task] <= set(out), out
        record = json.loads(line)
        if task == "qa":
            assert record["context"][out["start"] : out["end"]] == out["answer"]
        elif task == "multiple-choice":
            assert 0 <= out["choice"] < len(record["choices"]) and len(out["scores"]) == len(
                record["choices"]
            )
        elif task == "token-classification":
            assert len(out["tags"]) == len(record["tokens"])
        elif task == "classification":
            assert out["label"] in set(map(str, range(10))) and 0 < out["score"] <= 1
        elif task == "mlm":
            assert len(out["fills"]) == 1 and len(out["fills"][0]) == 5
    # sampled hashes come from a fixed seed: the same call gives the same answers
    assert list(predict(models[task], lines, batch_size=2)) == outputs
    if task != "qa":  # YOSO-E: the batch size changes nothing beyond float rounding
        assert_close(list(predict(models[task], lines, batch_size=5)), outputs)


def assert_close(a, b):
    """Equal JSON values, floats within 1e-4."""
    if isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-4)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y)
    else:
        assert a == b


def test_predict_streams_batch_by_batch(models):
    lines = inputs("classification", 6)
    consumed = []

    def source():
        for line in lines:
            consumed.append(line)
            yield line

    stream = predict(models["classification"], source(), batch_size=2)
    first = next(stream)
    assert first["id"] == "r0" and len(consumed) == 2  # answered before the rest was read
    assert [o["id"] for o in stream] == ["r1", "r2", "r3", "r4", "r5"]


def test_plain_text_lines_and_blank_lines(models):
    outputs = list(predict(models["classification"], ["[MAX 2 3 ]\n", "\n", "[MIN 4 [SM 1 2 ] ]\n"]))
    assert len(outputs) == 2 and all("id" not in o for o in outputs)


def test_malformed_line_raises_after_earlier_answers(models):
    lines = inputs("qa", 3)
    lines.insert(2, '{"question": "no context"}')
    got = []
    with pytest.raises(DataError, match="line 3"):
        for out in predict(models["qa"], lines, batch_size=8):
            got.append(out)
    assert [o["id"] for o in got] == ["r0", "r1"]
    errors = []
    skipped = list(predict(models["qa"], lines, batch_size=8, skip_invalid=True, on_error=errors.append))
    assert [o["id"] for o in skipped] == ["r0", "r1", "r2"]
    assert errors[0]["line"] == 3 and "context" in errors[0]["error"]


def test_cli_reads_stdin_writes_stdout(models):
    lines = inputs("multiple-choice", 3)
    result = invoke("predict", "--model", models["multiple-choice"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in outputs] == ["r0", "r1", "r2"]
    assert all(set(o) >= OUTPUT_KEYS["multiple-choice"] for o in outputs)


def test_cli_files_and_malformed_line_exit_2_after_earlier_lines(models, tmp_path):
    lines = inputs("token-classification", 4)
    lines.insert(3, "not json")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    target = tmp_path / "out.jsonl"
    args = [
        "predict",
        "--model",
        models["token-classification"],
        "--input",
        str(source),
        "--output",
        str(target),
    ]
    result = invoke(*args, "--batch-size", "2")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {source}: line 4: ")
    assert len(result.stderr.strip().splitlines()) == 1
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert [o["id"] for o in written] == ["r0", "r1", "r2"]

    result = invoke(*args, "--skip-invalid")
    assert result.exit_code == 0
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == ["r0", "r1", "r2", "r3"]
    error = json.loads(result.stderr.strip())
    assert error["line"] == 4 and "line 4" in error["error"]
    assert not list(tmp_path.glob(".out.jsonl.tmp*"))  # the temporary file was renamed away


def test_cli_empty_input(models):
    result = invoke("predict", "--model", models["classification"], input="")
    assert result.exit_code == 0 and result.stdout == ""


def test_cli_bad_usage(models, tmp_path):
    for args, message in [
        (["--model", str(tmp_path)], "is not a model directory"),
        (["--model", models["qa"], "--input", str(tmp_path / "none.jsonl")], "--input"),
        (["--model", models["qa"], "--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--model", models["qa"], "--output", str(tmp_path / "no" / "out.jsonl")], "does not exist"),
    ]:
        result = invoke("predict", *args, input="")
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr


def test_model_without_task_is_refused(models, tmp_path):
    from yoso_core import YosoModel

    bare = tmp_path / "bare"
    predictor = load_predictor(models["qa"])
    YosoModel(predictor.model.config).save_pretrained(bare)
    config = json.loads((bare / "config.json").read_text())
    config.pop("task")
    (bare / "config.json").write_text(json.dumps(config))
    with pytest.raises(PredictError, match="does not say which task"):
        list(predict(bare, []))


def labelled_inputs(task: str, count: int) -> list[str]:
    """``count`` built-in validation records of ``task`` as predict lines, labels kept (a dev file)."""
    records = load_task_data(task, seed=5, seq_len=64, num_train=1, num_validation=count)["validation"]
    return [json.dumps({"id": f"r{i}", **record}) for i, record in enumerate(records)]


@pytest.mark.parametrize("task", ["classification", "token-classification", "qa", "multiple-choice"])
def test_labels_in_the_input_are_scored_not_encoded(models, task):
    lines = labelled_inputs(task, 4)
    metrics = []
    outputs = list(predict(models[task], lines, batch_size=3, on_metrics=metrics.append))
    assert outputs == list(predict(models[task], inputs(task, 4), batch_size=3))  # labels change nothing
    (reported,) = metrics
    assert reported["lines"] == 4
    records = [json.loads(line) for line in lines]
    if task == "classification":
        want = sum(o["label"] == str(r["label"]) for o, r in zip(outputs, records)) / 4
        assert reported["accuracy"] == pytest.approx(want)
        assert 0.0 <= reported["macro_f1"] <= 1.0
    elif task == "multiple-choice":
        want = sum(o["choice"] == r["label"] for o, r in zip(outputs, records)) / 4
        assert reported["accuracy"] == pytest.approx(want)
    elif task == "token-classification":
        pairs = [(a, b) for o, r in zip(outputs, records) for a, b in zip(o["tags"], r["tags"])]
        assert reported["token_accuracy"] == pytest.approx(sum(a == b for a, b in pairs) / len(pairs))
        assert {"precision", "recall", "f1"} <= set(reported)
    else:
        assert {"exact_match", "f1"} <= set(reported)
    # only the labelled lines count; unlabelled input reports nothing
    mixed = [lines[0], inputs(task, 2)[1]]
    metrics.clear()
    list(predict(models[task], mixed, on_metrics=metrics.append))
    assert metrics[0]["lines"] == 1
    metrics.clear()
    list(predict(models[task], inputs(task, 2), on_metrics=metrics.append))
    assert metrics == []


def test_cli_labelled_input_reports_metrics_on_stderr(models):
    line = json.dumps({"text": "[MAX 2 3 ]", "label": "3"})
    result = invoke("predict", "--model", models["classification"], input=line + "\n")
    assert result.exit_code == 0, result.stderr
    (out,) = [json.loads(x) for x in result.stdout.splitlines()]
    reported = json.loads(result.stderr.strip())["metrics"]
    right = float(out["label"] == "3")
    assert reported == {"lines": 1, "accuracy": right, "macro_f1": right}
    tagged = json.dumps({"tokens": ["alpha", "beta"], "tags": ["O", "O"]})
    result = invoke("predict", "--model", models["token-classification"], input=tagged + "\n")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stderr.strip())["metrics"]["lines"] == 1


def test_long_inputs_are_predicted_throughout(models):
    """Inputs far longer than the model's 64 positions: every word tagged, every mask filled."""
    words = ("Lists are mutable sequences of 42 values " * 120).split()  # 840 words
    (out,) = predict(models["token-classification"], [json.dumps({"tokens": words})])
    assert len(out["tags"]) == len(words)
    text = " ".join(words[:3] + ["<mask>"] + words[4:400] + ["<mask>"] + words[401:-1] + ["<mask>"])
    (out,) = predict(models["mlm"], [json.dumps({"text": text})])
    assert len(out["fills"]) == 3 and all(len(options) == 5 for options in out["fills"])
    assert out["fills"][2][0]["sequence"].startswith(" ".join(words[:3]) + " <mask>")


def test_question_too_long_names_the_input_line_and_skips_only_that_line(models):
    lines = inputs("qa", 5)
    long = json.loads(lines[3])
    long["question"] = "why " * 60  # no room for the context in a 64-token window
    lines[3] = json.dumps(long)
    got = []
    with pytest.raises(DataError, match=r"^line 4: the question is too long"):
        for out in predict(models["qa"], lines, batch_size=8):
            got.append(out)
    assert [o["id"] for o in got] == ["r0", "r1", "r2"]
    errors = []
    kept = list(predict(models["qa"], lines, batch_size=8, skip_invalid=True, on_error=errors.append))
    assert [o["id"] for o in kept] == ["r0", "r1", "r2", "r4"]  # the rest of the batch is answered
    assert kept == [o for o in predict(models["qa"], lines[:3] + lines[4:], batch_size=8)]
    assert [e["line"] for e in errors] == [4] and errors[0]["error"].startswith("line 4: the question")
    result = invoke("predict", "--model", models["qa"], input="\n".join(lines) + "\n")
    assert result.exit_code == 2 and result.stderr.startswith("error: line 4: the question is too long")
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["r0", "r1", "r2"]


@pytest.mark.parametrize("task", ["qa", "classification"])
def test_sampled_answer_does_not_depend_on_the_position_of_the_line(models, task, tmp_path):
    """The same line at position 1 and 17 (other batch companions, other padding) answers alike."""
    import shutil

    model = models[task]
    if task != "qa":  # the qa model is sampled already; make a sampled copy of the YOSO-E one
        model = shutil.copytree(model, tmp_path / "sampled")
        config = json.loads((model / "config.json").read_text())
        config["use_expectation"] = False
        (model / "config.json").write_text(json.dumps(config))
    assert load_predictor(model).model.config.use_expectation is False
    lines = inputs(task, 20)
    lines[16] = lines[0]
    outputs = list(predict(model, lines, batch_size=16))
    assert outputs[16] == outputs[0]
    assert outputs[1:16] != [outputs[0]] * 15  # the other lines do get answers of their own


@pytest.mark.parametrize("task", ["classification", "token-classification", "qa", "multiple-choice"])
def test_predict_metrics_equal_training_evaluation_on_the_same_records(models, task):
    """A validation file scored by `yoso predict` gets the figures training's evaluation gives it."""
    import torch

    from yoso_core.data import encode
    from yoso_core.training.evaluate import evaluate

    predictor = load_predictor(models[task])
    label2id = predictor.model.config.label2id if task in ("classification", "token-classification") else None
    lines = labelled_inputs(task, 10)
    if task == "classification":  # the tiny model knows the labels its 12 training records had
        lines = [line for line in lines if str(json.loads(line)["label"]) in label2id]
    lines = lines[:6]
    reported = []
    list(predict(predictor, lines, batch_size=6, on_metrics=reported.append))
    records = [json.loads(line) for line in lines]
    features = encode(task, records, predictor.tokenizer, seq_len=predictor.max_length, label2id=label2id)
    evaluated = evaluate(
        predictor.model,
        task,
        records,
        features,
        predictor.tokenizer,
        batch_size=6,
        device=torch.device("cpu"),
        seed=0,
    )
    evaluated.pop("loss", None)
    (scored,) = reported
    assert scored.pop("lines") == len(lines) >= 4
    assert set(scored) == set(evaluated)
    assert scored == pytest.approx(evaluated)


def test_multiple_choice_lines_of_other_choice_counts_share_a_batch(models):
    """Predict pads a batch with ``collate(pad_choices=True)``: a line's answer is the one it gets alone."""
    lines = [
        json.dumps({"context": "The pass key is 12345.", "choices": ["12345", "54321"]}),
        json.dumps({"context": "Lists are mutable.", "choices": ["mutable", "immutable", "frozen", "fixed"]}),
        json.dumps({"context": "Tuples are not.", "choices": ["a", "b", "c"]}),
    ]
    together = list(predict(models["multiple-choice"], lines, batch_size=3))
    alone = [out for line in lines for out in predict(models["multiple-choice"], [line], batch_size=1)]
    assert [len(out["scores"]) for out in together] == [2, 4, 3]
    assert [out["choice"] for out in together] == [out["choice"] for out in alone]
    for a, b in zip(together, alone):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
