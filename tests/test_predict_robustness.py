"""`yoso predict` under interruption, undecodable bytes and bad paths: what is kept, what is said."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import invoke, train_tiny_classifier

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """A tiny classification model trained for two steps."""
    return train_tiny_classifier(tmp_path_factory.mktemp("cls"), use_expectation=True).final_dir


def lines(count: int) -> list[str]:
    return [json.dumps({"id": f"r{i}", "text": f"[MAX {i % 10} [MIN 3 4 ] ]"}) for i in range(count)]


def assert_prefix_of_answers(path, at_least: int) -> int:
    """``path`` holds complete answers of the first N input lines, in order; returns N."""
    answers = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(answers) >= at_least
    assert [a["id"] for a in answers] == [f"r{i}" for i in range(len(answers))]
    assert all({"label", "score"} <= set(a) for a in answers)
    return len(answers)


# ---- interruption --------------------------------------------------------------------------------


def test_sigterm_keeps_the_answers_written_so_far(model, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines(20000)) + "\n")
    target = tmp_path / "out.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["predict", "--model", model, "--input", str(source), "--output", str(target), "--batch-size", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "yoso_cli.main", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            temps = list(tmp_path.glob(".out.jsonl.tmp-*"))
            if temps and temps[0].stat().st_size > 0 and temps[0].read_text().count("\n") >= 20:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted by SIGTERM" in stderr and str(target) in stderr
    kept = assert_prefix_of_answers(target, 20)
    assert kept < 20000
    assert not list(tmp_path.glob(".out.jsonl.tmp*"))  # no temporary file left


def test_ctrl_c_keeps_the_answers_written_so_far(model, tmp_path, monkeypatch):
    import yoso_core.predict as core

    real, calls = core.answer, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "answer", interrupted)
    target = tmp_path / "out.jsonl"
    target.write_text("old content\n")
    result = invoke(
        "predict", "--model", model, "--output", str(target), "--batch-size", "2", input="\n".join(lines(10))
    )
    assert result.exit_code == 130, result.output
    assert "interrupted by SIGINT: 4 answer(s)" in result.stderr
    assert assert_prefix_of_answers(target, 4) == 4
    assert not list(tmp_path.glob(".out.jsonl.tmp*"))


def test_a_crash_keeps_the_answers_and_removes_the_temporary_file(model, tmp_path, monkeypatch):
    import yoso_core.predict as core

    real, calls = core.answer, []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "answer", crashing)
    target = tmp_path / "out.jsonl"
    result = invoke(
        "predict", "--model", model, "--output", str(target), "--batch-size", "3", input="\n".join(lines(9))
    )
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
    assert assert_prefix_of_answers(target, 3) == 3
    assert not list(tmp_path.glob(".out.jsonl.tmp*"))


def test_stale_temporary_files_of_killed_runs_are_swept(model, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.jsonl.tmp-{dead.pid}"
    stale.write_text("half")
    live = tmp_path / f".out.jsonl.tmp-{os.getpid()}x"  # not a pid suffix: left alone
    live.write_text("other")
    result = invoke("predict", "--model", model, "--output", str(tmp_path / "out.jsonl"), input=lines(1)[0])
    assert result.exit_code == 0, result.output
    assert not stale.exists() and live.exists()


# ---- bytes that are not UTF-8 --------------------------------------------------------------------


def latin1_input() -> bytes:
    """Five lines; line 3 holds a Latin-1 byte (0xe9), which is not UTF-8."""
    raw = [line.encode() for line in lines(5)]
    raw[2] = b'{"id": "r2", "text": "caf\xe9"}'
    return b"\n".join(raw) + b"\n"


def test_non_utf8_input_file_stops_at_its_line_and_keeps_earlier_answers(model, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(latin1_input())
    target = tmp_path / "out.jsonl"
    result = invoke("predict", "--model", model, "--input", str(source), "--output", str(target))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (message,) = result.stderr.splitlines()
    assert message.startswith(f"error: {source}: line 3: not valid UTF-8 (byte 0xe9")
    assert assert_prefix_of_answers(target, 2) == 2
    result = invoke(
        "predict", "--model", model, "--input", str(source), "--output", str(target), "--skip-invalid"
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["id"] for x in target.read_text().splitlines()] == ["r0", "r1", "r3", "r4"]
    assert json.loads(result.stderr)["line"] == 3


def test_non_utf8_stdin_is_one_bad_line(model):
    result = invoke("predict", "--model", model, input=latin1_input())
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: line 3: not valid UTF-8")
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["r0", "r1"]
    result = invoke("predict", "--model", model, "--skip-invalid", input=latin1_input())
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["r0", "r1", "r3", "r4"]
    error = json.loads(result.stderr)
    assert error["line"] == 3 and "not valid UTF-8" in error["error"]


# ---- bad paths and damaged models: one error line, exit 2, before the work ------------------------


def refuse_work(monkeypatch):
    """Make any model run fail the test: the error must come before the work."""
    import yoso_core.predict as core

    def no_work(*args, **kwargs):
        raise AssertionError("the model ran before the error")

    monkeypatch.setattr(core, "answer", no_work)


def assert_one_error(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    (message,) = result.stderr.splitlines()
    assert message.startswith("error: ") and all(p in message for p in parts), message


def test_output_that_is_a_directory_is_refused_before_the_work(model, tmp_path, monkeypatch):
    refuse_work(monkeypatch)
    result = invoke("predict", "--model", model, "--output", str(tmp_path), input="\n".join(lines(3)))
    assert_one_error(result, f"--output {str(tmp_path)!r} is a directory", "give a file name")
    result = invoke("predict", "--model", model, "--input", str(tmp_path), input="")
    assert_one_error(result, "is not a file")


def test_parquet_and_csv_inputs_are_read_as_records(model, tmp_path):
    import pandas as pd

    rows = [json.loads(line) for line in lines(4)]
    want = [
        json.loads(x)
        for x in invoke("predict", "--model", model, input="\n".join(lines(4))).stdout.splitlines()
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "in.parquet")
    pd.DataFrame(rows).to_csv(tmp_path / "in.csv", index=False)
    for name in ("in.parquet", "in.csv"):
        result = invoke("predict", "--model", model, "--input", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        assert [json.loads(x) for x in result.stdout.splitlines()] == want
    # a bad row is named by its row number, and skipped with --skip-invalid
    rows[1]["text"] = None
    pd.DataFrame(rows).to_parquet(tmp_path / "bad.parquet")
    result = invoke("predict", "--model", model, "--input", str(tmp_path / "bad.parquet"))
    assert_one_error(result, f"{tmp_path / 'bad.parquet'}: row 2: ", 'column "text" is empty')
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["r0"]
    result = invoke("predict", "--model", model, "--input", str(tmp_path / "bad.parquet"), "--skip-invalid")
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["r0", "r2", "r3"]
    assert json.loads(result.stderr)["row"] == 2


def test_a_file_that_is_not_parquet_is_refused_before_the_work(model, tmp_path, monkeypatch):
    refuse_work(monkeypatch)
    fake = tmp_path / "x.parquet"
    fake.write_text('{"text": "a"}\n')
    result = invoke("predict", "--model", model, "--input", str(fake), "--output", str(tmp_path / "o.jsonl"))
    assert_one_error(result, f"{fake}: cannot read it as parquet")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("damage", ["no weights", "truncated weights", "missing tensor", "broken tokenizer"])
def test_a_damaged_model_directory_is_one_error_line_before_the_work(model, tmp_path, monkeypatch, damage):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = shutil.copytree(model, tmp_path / "model")
    weights = broken / "model.safetensors"
    if damage == "no weights":
        weights.unlink()
        expected = "cannot load the weights"
    elif damage == "truncated weights":
        os.truncate(weights, weights.stat().st_size // 2)
        expected = "cannot load the weights"
    elif damage == "missing tensor":
        tensors = load_file(weights)
        tensors.pop(sorted(tensors)[0])
        save_file(tensors, weights, metadata={"format": "pt"})
        expected = "the weights lack 1 of the model's tensors"
    else:
        tokenizer = broken / "tokenizer.json"
        tokenizer.write_text(tokenizer.read_text()[:1000])
        expected = "cannot load its tokenizer"
    refuse_work(monkeypatch)
    target = tmp_path / "out.jsonl"
    result = invoke("predict", "--model", str(broken), "--output", str(target), input="\n".join(lines(2)))
    assert_one_error(result, f"--model {str(broken)!r}: {expected}")
    assert not target.exists()


def test_non_utf8_csv_row_is_one_bad_row(model, tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,text\nr0,[MAX 1 2 ]\nr1,caf\xe9\nr2,[MIN 3 4 ]\n")
    result = invoke("predict", "--model", model, "--input", str(source))
    assert_one_error(result, f"{source}: row 2: not valid UTF-8 (byte 0xe9")
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["r0"]
    result = invoke("predict", "--model", model, "--input", str(source), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["r0", "r2"]
    assert json.loads(result.stderr)["row"] == 2
