"""Local files: every extension loads, every bad input is a DataError naming file, row and format."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from yoso_core.data import DataError, label_names, load_task_data
from yoso_core.data.loading import read_records


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _classification_rows(n):
    return [{"text": f"text number {i}", "label": ["neg", "pos"][i % 2]} for i in range(n)]


def test_jsonl_json_and_json_array(tmp_path):
    rows = _classification_rows(4)
    expected = [{"text": r["text"], "label": r["label"]} for r in rows]
    assert read_records("classification", _jsonl(tmp_path / "a.jsonl", rows)) == expected
    assert read_records("classification", _jsonl(tmp_path / "a.json", rows)) == expected
    (tmp_path / "b.json").write_text(json.dumps(rows, indent=1))
    assert read_records("classification", tmp_path / "b.json") == expected


def test_csv_with_json_and_space_separated_columns(tmp_path):
    pd.DataFrame({"text": ["good", "bad"], "text_pair": ["x", None], "label": [1, 0]}).to_csv(
        tmp_path / "c.csv", index=False
    )
    assert read_records("classification", tmp_path / "c.csv") == [
        {"text": "good", "text_pair": "x", "label": "1"},
        {"text": "bad", "label": "0"},
    ]
    pd.DataFrame({"tokens": ["New York 3"], "tags": ["B-CAP I-CAP B-NUM"]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    assert read_records("token-classification", tmp_path / "t.csv") == [
        {"tokens": ["New", "York", "3"], "tags": ["B-CAP", "I-CAP", "B-NUM"]}
    ]
    pd.DataFrame(
        {"context": ["pick one"], "choices": [json.dumps(["a", "b", "c"])], "label": [2], "id": ["q1"]}
    ).to_csv(tmp_path / "m.csv", index=False)
    assert read_records("multiple-choice", tmp_path / "m.csv") == [
        {"id": "q1", "context": "pick one", "choices": ["a", "b", "c"], "label": 2}
    ]


def test_parquet_with_nested_answers(tmp_path):
    record = {"question": "Who?", "context": "It was Ada.", "answers": {"text": ["Ada"], "answer_start": [7]}}
    pd.DataFrame([record]).to_parquet(tmp_path / "q.parquet")
    assert read_records("qa", tmp_path / "q.parquet") == [record]


def test_txt_lines_are_mlm_records(tmp_path):
    (tmp_path / "c.txt").write_text("first paragraph\n\nsecond one\n")
    assert read_records("mlm", tmp_path / "c.txt") == [{"text": "first paragraph"}, {"text": "second one"}]


def test_train_file_without_validation_is_split_deterministically(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", _classification_rows(50))
    first = load_task_data("classification", train_file=path, seed=1)
    assert (len(first["train"]), len(first["validation"])) == (45, 5)
    assert first == load_task_data("classification", train_file=str(path), seed=1)
    assert first["validation"] != load_task_data("classification", train_file=path, seed=2)["validation"]
    texts = [r["text"] for r in first["train"] + first["validation"]]
    assert sorted(texts) == sorted(r["text"] for r in _classification_rows(50))
    tiny = load_task_data("classification", train_file=_jsonl(tmp_path / "t.jsonl", _classification_rows(3)))
    assert (len(tiny["train"]), len(tiny["validation"])) == (2, 1)


def test_validation_file_and_caps(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", _classification_rows(20))
    validation = _jsonl(tmp_path / "dev.jsonl", _classification_rows(6))
    data = load_task_data(
        "classification", train_file=train, validation_file=validation, num_train=7, num_validation=2
    )
    assert [r["text"] for r in data["train"]] == [f"text number {i}" for i in range(7)]
    assert [r["text"] for r in data["validation"]] == ["text number 0", "text number 1"]


def test_label_names():
    assert label_names("classification", [{"label": "10"}, {"label": "9"}, {"label": "2"}]) == [
        "2",
        "9",
        "10",
    ]
    assert label_names("classification", [{"label": "pos"}, {"label": "neg"}, {"label": "pos"}]) == [
        "neg",
        "pos",
    ]
    records = [{"tokens": ["a", "B"], "tags": ["B-X", "O"]}, {"tokens": ["c"], "tags": ["A-Y"]}]
    assert label_names("token-classification", records) == ["O", "A-Y", "B-X"]
    assert label_names("qa", []) is None and label_names("mlm", []) is None
    assert label_names("multiple-choice", []) is None


# ---- errors: each names the file, the row or line, and the expected format -------------------------

BAD_RECORDS = [
    ("classification", {"txt": "no text column", "label": "a"}, 'missing column "text"'),
    ("classification", {"text": 5, "label": "a"}, 'column "text" must be a string, got int'),
    (
        "classification",
        {"text": "x", "label": 1.5},
        'column "label" must be a string or an integer, got float',
    ),
    (
        "classification",
        {"text": "x", "label": ["a"]},
        'column "label" must be a string or an integer, got list',
    ),
    ("classification", {"text": "x"}, 'missing column "label"'),
    ("token-classification", {"tokens": ["a", "b"], "tags": ["O"]}, 'column "tags" has 1 tags for 2 tokens'),
    (
        "token-classification",
        {"tokens": ["a", 3], "tags": ["O", "O"]},
        'column "tokens" item 1 must be a string',
    ),
    (
        "qa",
        {"question": "q", "context": "abc", "answers": {"text": ["b"], "answer_start": [0]}},
        "is not found",
    ),
    ("qa", {"question": "q", "context": "abc", "answers": ["b"]}, 'column "answers" must be an object'),
    (
        "qa",
        {"question": "q", "context": "abc", "answers": {"text": ["b"], "answer_start": []}},
        "1 texts but 0 starts",
    ),
    (
        "multiple-choice",
        {"context": "c", "choices": ["a", "b"], "label": 2},
        'column "label" is 2, outside 0..1',
    ),
    (
        "multiple-choice",
        {"context": "c", "choices": ["a", "b"], "label": "0"},
        "must be an integer choice index",
    ),
    ("multiple-choice", {"context": "c", "choices": "a b", "label": 0}, 'column "choices" must be a list'),
    ("mlm", {"text": None}, 'column "text" is empty'),
]


@pytest.mark.parametrize(("task", "bad", "problem"), BAD_RECORDS)
def test_bad_record_names_file_line_and_format(tmp_path, task, bad, problem):
    good = {
        "classification": {"text": "fine", "label": "a"},
        "token-classification": {"tokens": ["a"], "tags": ["O"]},
        "qa": {"question": "q", "context": "abc", "answers": {"text": ["b"], "answer_start": [1]}},
        "multiple-choice": {"context": "c", "choices": ["a", "b"], "label": 0},
        "mlm": {"text": "fine"},
    }[task]
    path = _jsonl(tmp_path / "bad.jsonl", [good, good, bad, good])
    with pytest.raises(DataError) as info:
        load_task_data(task, train_file=path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3: ")
    assert problem in message
    assert "expected records like {" in message


def test_row_numbers_of_csv_and_parquet(tmp_path):
    pd.DataFrame({"text": ["a", "b", None], "label": ["x", "y", "z"]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match=r"c\.csv: row 3: column \"text\" is empty .*expected records like"):
        read_records("classification", tmp_path / "c.csv")
    pd.DataFrame({"text": ["a", "b"], "label": [0.5, 1.5]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(
        DataError, match=r"p\.parquet: row 1: column \"label\" must be a string or an integer"
    ):
        read_records("classification", tmp_path / "p.parquet")


def test_unreadable_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl: line 3: not valid JSON .*one JSON object per line"):
        read_records("classification", path)
    path.write_text('{"text": "a", "label": "x"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"line 2: a record must be an object, got list"):
        read_records("classification", path)


@pytest.mark.parametrize(
    ("name", "content", "task", "problem"),
    [
        ("data.xlsx", "x", "classification", "unsupported file extension '.xlsx'; use .json, .jsonl, .csv"),
        ("empty.jsonl", "", "classification", "the file is empty"),
        ("blank.jsonl", "\n  \n", "classification", "the file holds only blank lines"),
        ("notes.txt", "some text\n", "qa", "a .txt file holds plain text for mlm only"),
        ("broken.csv", '"unterminated\n', "classification", "cannot read it as csv"),
    ],
)
def test_file_level_errors(tmp_path, name, content, task, problem):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_task_data(task, train_file=path)
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)
    assert "expected records like" in str(info.value)


def test_argument_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_task_data("mlm", train_file=tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="without a training file"):
        load_task_data("mlm", validation_file=tmp_path / "dev.jsonl")
    with pytest.raises(DataError, match="give one of them"):
        load_task_data("mlm", train_file=tmp_path / "a.jsonl", dataset="some/set")
    one = _jsonl(tmp_path / "one.jsonl", [{"text": "only"}])
    with pytest.raises(DataError, match="cannot be split into training and validation"):
        load_task_data("mlm", train_file=one)
    with pytest.raises(ValueError, match="num_train must be a non-negative integer"):
        load_task_data("mlm", num_train=-1)
    with pytest.raises(ValueError, match="unknown task 'ner'"):
        load_task_data("ner")
    assert issubclass(DataError, ValueError)


def test_hub_data_set_class_labels_become_names(monkeypatch):
    import datasets

    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
        }
    )
    rows = {"tokens": [["Ada", "Lovelace", "wrote"], ["hi"]], "ner_tags": [[1, 2, 0], [0]]}
    fake = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)})
    seen = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config: seen.append((name, config)) or fake)
    data = load_task_data("token-classification", dataset="someone/ner", dataset_config="en", seed=0)
    assert seen == [("someone/ner", "en")]
    records = data["train"] + data["validation"]
    assert len(data["validation"]) == 1 and len(records) == 2
    assert {"tokens": ["Ada", "Lovelace", "wrote"], "tags": ["B-PER", "I-PER", "O"]} in records

    bad = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"sentence": ["a"]})})
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config: bad)
    with pytest.raises(DataError, match=r"data set 'x' split train: row 1: missing column \"text\""):
        load_task_data("classification", dataset="x")


def test_multiple_choice_records_need_one_choice_count(tmp_path):
    rows = [{"context": "c", "choices": ["a", "b", "c"], "label": 0}] * 2
    path = _jsonl(tmp_path / "mc.jsonl", [*rows, {"context": "c", "choices": ["a", "b"], "label": 1}])
    with pytest.raises(DataError) as info:
        load_task_data("multiple-choice", train_file=path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3: ")
    assert 'column "choices" has 2 choices but line 1 has 3' in message
    assert "all multiple-choice records need the same number of choices" in message
    pd.DataFrame(
        {
            "context": ["c", "c"],
            "choices": [json.dumps(["a", "b"]), json.dumps(["a", "b", "c"])],
            "label": [0, 0],
        }
    ).to_csv(tmp_path / "mc.csv", index=False)
    with pytest.raises(DataError, match=r"mc\.csv: row 2: column \"choices\" has 3 choices but row 1 has 2"):
        read_records("multiple-choice", tmp_path / "mc.csv")


def test_hub_multiple_choice_split_needs_one_choice_count(monkeypatch):
    import datasets

    rows = {"context": ["c", "c"], "choices": [["a", "b"], ["a", "b", "c"]], "label": [0, 1]}
    fake = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)})
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config: fake)
    with pytest.raises(DataError, match=r"data set 'mc' split train: row 2: .*same number of choices"):
        load_task_data("multiple-choice", dataset="mc")


def test_unloadable_hub_data_set_is_one_line_naming_it_and_train_file(monkeypatch):
    import datasets

    def fail(name, config):
        raise ConnectionError("Couldn't reach the hub.\nCheck your connection.\n")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(DataError) as info:
        load_task_data("classification", dataset="someone/gone")
    message = str(info.value)
    assert "\n" not in message
    assert (
        "data set 'someone/gone'" in message and "Couldn't reach the hub. Check your connection." in message
    )
    assert "--train-file" in message


def test_cli_offline_unknown_data_set_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    name = "yoso-tests/no-such-data-set"
    args = ["finetune", "--task", "classification", "--dataset", name, "--output-dir", str(tmp_path / "out")]
    result = subprocess.run(
        [sys.executable, "-m", "yoso_cli.main", *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: data set {name!r}: cannot load it") and "--train-file" in lines[0]
    assert result.stdout == "" and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "task", "content"),
    [
        ("a.jsonl", "classification", b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n'),
        (
            "a.json",
            "classification",
            b'[{"text": "ok", "label": "a"},\n {"text": "caf\xe9", "label": "b"}]\n',
        ),
        ("a.csv", "classification", b"text,label\nok,a\ncaf\xe9,b\n"),
        ("a.txt", "mlm", b"first line of text\ncaf\xe9 au lait\n"),
    ],
)
def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path, name, task, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_records(task, path)
    message = str(info.value)
    line = 3 if name.endswith(".csv") else 2  # the csv header is line 1
    assert message.startswith(f"{path}: line {line}: not valid UTF-8 (byte 0xe9 at byte ")
    assert "save the file as UTF-8" in message


def test_utf8_with_a_byte_order_mark_still_loads(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        "\ufeff".encode() + b'{"text": "caf\xc3\xa9", "label": "a"}\n{"text": "b", "label": "b"}\n'
    )
    assert read_records("classification", path)[0] == {"text": "café", "label": "a"}
