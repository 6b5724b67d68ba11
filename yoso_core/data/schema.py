"""Record formats per task, and the check every record passes before training starts.

One record is a dict; the formats follow the data table of the design:

- mlm: ``{"text": str}``
- classification: ``{"text": str, "text_pair": str (optional), "label": str | int}``
- token-classification: ``{"tokens": [str, ...], "tags": [str, ...]}`` (same length; a ``null``
  tag marks a word without a label, which the loss and the metrics skip)
- qa: ``{"question": str, "context": str, "answers": {"text": [str], "answer_start": [int]}}``
  (empty lists: no answer in the context, as in SQuAD 2.0)
- multiple-choice: ``{"context": str, "choices": [str, ...], "label": int}``

An optional ``"id"`` (str or int) is carried along. Labels are optional when ``labels=False``
(prediction input). Validation returns a normalised copy: classification labels become strings,
and only the known keys are kept.
"""

from __future__ import annotations

import json
from typing import Any

TASKS = ("mlm", "classification", "token-classification", "qa", "multiple-choice")

FORMATS = {
    "mlm": '{"text": str} (or plain text lines in a .txt file)',
    "classification": '{"text": str, "text_pair": str (optional), "label": str or int}',
    "token-classification": '{"tokens": [str, ...], "tags": [str or null, ...]} with one tag per token',
    "qa": '{"question": str, "context": str, "answers": {"text": [str], "answer_start": [int]}}',
    "multiple-choice": '{"context": str, "choices": [str, ...], "label": int (index of the right choice)}',
}

PREDICT_FORMATS = {
    "mlm": '{"text": "... <mask> ..."} or a plain text line',
    "classification": '{"text": str, "text_pair": str (optional)} or a plain text line',
    "token-classification": '{"tokens": [str, ...]} or {"text": str}',
    "qa": '{"question": str, "context": str}',
    "multiple-choice": '{"context": str, "choices": [str, ...]}',
}


class DataError(ValueError):
    """Bad input data; the message names the file, the 1-based row or line and the expected format."""


class RecordError(ValueError):
    """A record that does not match its task's format; the caller adds file and row to the message."""


def check_task(task: str) -> None:
    """Raise ValueError for a task name outside TASKS."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_json_field(value: Any) -> Any:
    """Columns of csv files cannot hold lists: accept JSON text there (``'["a", "b"]'``)."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _missing(record: dict, key: str) -> RecordError:
    if key in record:
        return RecordError(f'column "{key}" is empty (null)')
    return RecordError(f'missing column "{key}"')


def _text(record: dict, key: str, *, optional: bool = False) -> str | None:
    value = record.get(key)
    if value is None:
        if optional:
            return None
        raise _missing(record, key)
    if not isinstance(value, str):
        raise RecordError(f'column "{key}" must be a string, got {type(value).__name__}')
    return value


def _string_list(record: dict, key: str, *, split: bool = False, nullable: bool = False) -> list[str]:
    value = _decode_json_field(record.get(key))
    if value is None:
        raise _missing(record, key)
    if split and isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)):
        raise RecordError(f'column "{key}" must be a list of strings, got {type(value).__name__}')
    for i, item in enumerate(value):
        if not isinstance(item, str) and not (nullable and item is None):
            kind = "a string or null" if nullable else "a string"
            raise RecordError(f'column "{key}" item {i} must be {kind}, got {type(item).__name__}')
    return list(value)


def validate_record(task: str, record: Any, *, labels: bool = True) -> dict:
    """A normalised copy of one record of ``task``; raises RecordError naming what is wrong.

    ``labels=False`` accepts records without their label (prediction input); a label that is
    present is still checked.
    """
    if not isinstance(record, dict):
        raise RecordError(f"a record must be an object, got {type(record).__name__}")
    out: dict[str, Any] = {}
    if record.get("id") is not None:
        if not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool):
            raise RecordError(
                f'column "id" must be a string or an integer, got {type(record["id"]).__name__}'
            )
        out["id"] = record["id"]
    if task == "mlm":
        out["text"] = _text(record, "text")
    elif task == "classification":
        out["text"] = _text(record, "text")
        pair = _text(record, "text_pair", optional=True)
        if pair is not None:
            out["text_pair"] = pair
        label = record.get("label")
        if label is None:
            if labels:
                raise _missing(record, "label")
        elif _is_int(label) or isinstance(label, str):
            out["label"] = str(label)
        else:
            raise RecordError(f'column "label" must be a string or an integer, got {type(label).__name__}')
    elif task == "token-classification":
        out["tokens"] = _string_list(record, "tokens", split=True)
        if not out["tokens"]:
            raise RecordError('column "tokens" is empty')
        if record.get("tags") is not None or labels:
            tags = _string_list(record, "tags", split=True, nullable=True)
            if len(tags) != len(out["tokens"]):
                raise RecordError(f'column "tags" has {len(tags)} tags for {len(out["tokens"])} tokens')
            out["tags"] = tags
    elif task == "qa":
        out["question"] = _text(record, "question")
        out["context"] = _text(record, "context")
        answers = _decode_json_field(record.get("answers"))
        if answers is None:
            if labels:
                raise _missing(record, "answers")
        else:
            out["answers"] = _answers(answers, out["context"])
    elif task == "multiple-choice":
        out["context"] = _text(record, "context")
        out["choices"] = _string_list(record, "choices")
        if len(out["choices"]) < 2:
            raise RecordError(f'column "choices" needs at least 2 choices, got {len(out["choices"])}')
        label = record.get("label")
        if label is None:
            if labels:
                raise _missing(record, "label")
        elif not _is_int(label):
            raise RecordError(f'column "label" must be an integer choice index, got {type(label).__name__}')
        elif not 0 <= label < len(out["choices"]):
            raise RecordError(f'column "label" is {label}, outside 0..{len(out["choices"]) - 1}')
        else:
            out["label"] = label
    else:
        check_task(task)
    return out


def _answers(answers: Any, context: str) -> dict:
    if not isinstance(answers, dict):
        raise RecordError(f'column "answers" must be an object, got {type(answers).__name__}')
    texts, starts = answers.get("text"), answers.get("answer_start")
    if not isinstance(texts, (list, tuple)) or not isinstance(starts, (list, tuple)):
        raise RecordError('column "answers" needs lists "text" and "answer_start"')
    if len(texts) != len(starts):
        raise RecordError(
            f'column "answers" has {len(texts)} texts but {len(starts)} starts; give one start per text'
        )
    for text, start in zip(texts, starts):
        if not isinstance(text, str) or not _is_int(start):
            raise RecordError('column "answers" needs "text" strings and integer "answer_start"')
        if context[start : start + len(text)] != text:
            raise RecordError(f"answer {text!r} is not found at answer_start {start} of the context")
    return {"text": list(texts), "answer_start": list(starts)}
