"""Training and validation records: from local files, a hub data set, or the built-in generators.

Every record is validated on load (``schema.validate_record``), so bad data stops the run before
training starts with a DataError naming the file, the row and the expected format.

- ``.json`` / ``.jsonl``: one JSON object per line (a ``.json`` file may also hold one JSON array
  of objects); read with the standard library so that errors name the exact line.
- Text files (json, jsonl, csv, txt) must be UTF-8: other bytes stop the load with a DataError
  naming the file and line (never a silent replacement character).
- ``.csv`` / ``.parquet`` / ``.txt``: the ``datasets`` library's csv, parquet and text loaders.
  In csv files list columns (``choices``, ``answers``) are JSON text and ``tokens``/``tags`` may be
  space-separated. ``.txt`` files hold mlm text, one record per non-empty line.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

from .builtin import BUILTIN_PREFIX, builtin_data
from .schema import FORMATS, DataError, RecordError, check_task, validate_record

EXTENSIONS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
VALIDATION_FRACTION = 0.1


def load_task_data(
    task: str,
    *,
    train_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    dataset: str | None = None,
    dataset_config: str | None = None,
    seed: int = 0,
    seq_len: int = 512,
    num_train: int | None = None,
    num_validation: int | None = None,
) -> dict[str, list[dict]]:
    """``{"train": [...], "validation": [...]}`` validated records of ``task``.

    From ``train_file`` (+ ``validation_file``), else the hub data set ``dataset`` (online users),
    else the task's built-in generated set (deterministic from ``seed``; ``seq_len`` sets its
    document lengths). Without a validation file, a seeded 10% of the training records (at least
    one) is held out. ``num_train`` / ``num_validation`` cap the counts.
    """
    check_task(task)
    for name, value in (("num_train", num_train), ("num_validation", num_validation)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative integer or None, got {value!r}")
    if train_file is not None and dataset is not None:
        raise DataError(
            f"both a training file ({train_file}) and a data set ({dataset}) given; give one of them"
        )
    if validation_file is not None and train_file is None:
        raise DataError(
            f"validation file {validation_file} given without a training file; give --train-file too"
        )
    if train_file is None and (dataset is None or dataset.startswith(BUILTIN_PREFIX)):
        name = dataset[len(BUILTIN_PREFIX) :] if dataset is not None else None
        try:  # --dataset builtin:NAME picks one of the task's built-in sets
            counts = dict(num_train=num_train, num_validation=num_validation)
            return builtin_data(task, seed=seed, seq_len=seq_len, name=name, **counts)
        except ValueError as exc:
            raise DataError(str(exc)) from None
    if train_file is not None:
        train = read_records(task, train_file)
        validation = read_records(task, validation_file) if validation_file is not None else None
        source = str(train_file)
    else:
        train, validation = _hub_records(task, dataset, dataset_config)
        source = f"data set {dataset}"
    if validation is None:
        train, validation = _split(train, seed, source)
    return {"train": train[:num_train], "validation": validation[:num_validation]}


def _split(records: list[dict], seed: int, source: str) -> tuple[list[dict], list[dict]]:
    """A seeded hold-out of 10% (at least 1) of ``records``, both parts in their original order."""
    if len(records) < 2:
        raise DataError(
            f"{source}: {len(records)} record(s) cannot be split into training and validation; "
            "give at least 2 records or a validation file"
        )
    count = max(1, round(len(records) * VALIDATION_FRACTION))
    held = set(random.Random(f"split-{seed}").sample(range(len(records)), count))
    train = [r for i, r in enumerate(records) if i not in held]
    return train, [r for i, r in enumerate(records) if i in held]


def read_records(task: str, path: str | Path) -> list[dict]:
    """Every record of one local file, validated; DataError names the file, row and format."""
    path = Path(path)
    expected = f"expected records like {FORMATS[task]}"
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unsupported file extension {path.suffix!r}; "
            f"use .json, .jsonl, .csv, .parquet or .txt ({expected})"
        )
    if kind == "text" and task != "mlm":
        raise DataError(
            f"{path}: a .txt file holds plain text for mlm only; the {task} task needs "
            f".jsonl, .json, .csv or .parquet records; {expected}"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; {expected}")
    if kind == "json":
        rows = _json_rows(path, expected)
        unit = "line"
    else:
        rows = _datasets_rows(kind, path, expected)
        unit = "line" if kind == "text" else "row"
    records = []
    first_choices: tuple[int, int] | None = None
    for number, row in rows:
        if kind == "text" and not row.get("text", "").strip():
            continue  # blank lines separate paragraphs in plain text
        try:
            records.append(validate_record(task, row))
            if task == "multiple-choice":
                first_choices = _same_choice_count(records[-1], number, first_choices, unit)
        except RecordError as error:
            raise DataError(f"{path}: {unit} {number}: {error}; {expected}") from None
    if not records:
        raise DataError(f"{path}: no records; {expected}")
    return records


def _same_choice_count(
    record: dict, number: int, first: tuple[int, int] | None, unit: str
) -> tuple[int, int]:
    """(choice count, row number) of the first record; RecordError when ``record`` has another count.

    A multiple-choice batch is a (batch, choices, seq) tensor, so every record needs the same count.
    """
    count = len(record["choices"])
    if first is None:
        return count, number
    if count != first[0]:
        raise RecordError(
            f'column "choices" has {count} choices but {unit} {first[1]} has {first[0]}; '
            "all multiple-choice records need the same number of choices"
        )
    return first


def _utf8_lines(path: Path, *, keep: bool = True) -> list[str]:
    """The lines of a text file (ends kept), decoded as UTF-8 one by one; a byte-order mark is dropped.

    ``keep=False`` only checks the file (and returns nothing).
    Bytes that are not UTF-8 raise DataError naming the line and the byte, never a silent
    replacement character.
    """
    lines = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}: line {number}: not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte "
                    f"{error.start + 1} of the line); save the file as UTF-8"
                ) from None
            if keep:
                lines.append(text)
    return lines


def _json_rows(path: Path, expected: str) -> list[tuple[int, Any]]:
    """(line number, value) of a JSON-lines file, or (index, item) of a file holding one JSON array."""
    text = "".join(_utf8_lines(path))
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}: line {error.lineno}: not valid JSON ({error.msg}); {expected}"
            ) from None
        return [(i, item) for i, item in enumerate(items, start=1)]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}: line {number}: not valid JSON ({error.msg}); "
                f"give one JSON object per line, {expected}"
            ) from None
    if not rows:
        raise DataError(f"{path}: the file holds only blank lines; {expected}")
    return rows


def _datasets_rows(kind: str, path: Path, expected: str) -> list[tuple[int, dict]]:
    """(row number, row) of a csv, parquet or text file read by the ``datasets`` library."""
    import datasets

    if kind in ("csv", "text"):
        _utf8_lines(path, keep=False)  # the loaders' own decoding errors name no line
    quiet = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # stderr belongs to our own progress display
    with tempfile.TemporaryDirectory(prefix="yoso-data-") as cache:  # no stale cache, nothing left behind
        try:
            table = datasets.load_dataset(
                kind, data_files=str(path), split="train", cache_dir=cache, keep_in_memory=True
            )
        except Exception as error:  # the loaders raise many types; all mean "cannot read this file"
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise DataError(f"{path}: cannot read it as {kind} ({reason}); {expected}") from None
        finally:
            if not quiet:
                datasets.enable_progress_bars()
        rows = table.to_list()
    return list(enumerate(rows, start=1))


def _class_names(feature: Any) -> list[str] | None:
    """The names of a ``datasets.ClassLabel`` feature (or of a sequence of them), else None."""
    names = getattr(feature, "names", None)
    if names is None:
        inner = getattr(feature, "feature", None)
        names = getattr(inner, "names", None)
    return list(names) if names is not None else None


def _hub_records(task: str, name: str, config: str | None) -> tuple[list[dict], list[dict] | None]:
    """Train (and validation when the data set has one) records of a hub data set, validated.

    ClassLabel integers become their names; a token-classification set with ``ner_tags`` and no
    ``tags`` uses ``ner_tags``.
    """
    import datasets

    expected = f"expected records like {FORMATS[task]}"
    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as error:  # offline, missing set, bad config: all stop the run
        reason = " ".join(str(error).split())[:300] or type(error).__name__  # one line
        raise DataError(
            f"data set {name!r}: cannot load it ({reason}); check the name and --dataset-config "
            "and that you are online, or give a local file with --train-file"
        ) from None
    if "train" not in loaded:
        raise DataError(f"data set {name!r} has no train split (splits: {', '.join(loaded)})")
    splits = {"train": loaded["train"]}
    if "validation" in loaded:
        splits["validation"] = loaded["validation"]
    out: dict[str, list[dict]] = {}
    for split, table in splits.items():
        if (
            task == "token-classification"
            and "tags" not in table.column_names
            and "ner_tags" in table.column_names
        ):
            table = table.rename_column("ner_tags", "tags")
        names = {
            column: _class_names(table.features[column])
            for column in ("label", "tags")
            if column in table.column_names and task in ("classification", "token-classification")
        }
        records = []
        first_choices = None
        for number, row in enumerate(table, start=1):
            for column, classes in names.items():
                if classes is not None and row.get(column) is not None:
                    value = row[column]
                    row[column] = [classes[v] for v in value] if isinstance(value, list) else classes[value]
            try:
                records.append(validate_record(task, row))
                if task == "multiple-choice":
                    first_choices = _same_choice_count(records[-1], number, first_choices, "row")
            except RecordError as error:
                raise DataError(
                    f"data set {name!r} split {split}: row {number}: {error}; {expected}"
                ) from None
        out[split] = records
    return out["train"], out.get("validation")


def label_names(task: str, records: list[dict]) -> list[str] | None:
    """The label set of ``records``: classification labels sorted (numerically when all are
    integers), token-classification tags sorted with ``"O"`` first (always present); else None."""
    check_task(task)
    if task == "classification":
        labels = {str(r["label"]) for r in records if "label" in r}
        if labels and all(label.lstrip("-").isdigit() for label in labels):
            return sorted(labels, key=int)
        return sorted(labels)
    if task == "token-classification":
        tags = {t for r in records for t in r.get("tags", ())} - {"O", None}
        return ["O", *sorted(tags)]
    return None
