"""Prediction input: lines (bytes or JSON text) and table rows to validated records of a task."""

from __future__ import annotations

import json
from typing import Any

from .schema import PREDICT_FORMATS, DataError, RecordError, check_task, validate_record

# The key of each task's gold label in a record (mlm has none). A label is not a model input: a
# line whose label is malformed is answered, and left out of the metrics (``LABEL_ERROR`` says why).
LABEL_KEYS = {
    "classification": "label",
    "token-classification": "tags",
    "qa": "answers",
    "multiple-choice": "label",
}
LABEL_ERROR = "_label_error"


def decode_line(raw: bytes, line_number: int, *, source: str | None = None) -> str:
    """One input line's bytes as text (UTF-8; a byte-order mark on line 1 is dropped).

    DataError names the file (``source``), the line and the first bad byte for bytes that are not
    UTF-8, so ``yoso predict`` stops there (or ``--skip-invalid`` skips the line) like for any
    malformed line.
    """
    if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        where = f"{source}: line {line_number}" if source else f"line {line_number}"
        raise DataError(
            f"{where}: not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the "
            "line); save the input as UTF-8"
        ) from None


def parse_predict_line(
    task: str, line: str, line_number: int, *, source: str | None = None, unit: str = "line"
) -> dict:
    """One input line of ``yoso predict`` as a validated record; DataError names the line number.

    A JSON object in the task's format (labels optional), or, for classification and mlm, a plain
    text line (``{"text": line}``); token-classification also accepts ``{"text"}`` (split on
    whitespace into tokens). ``source`` (a file name) prefixes the message when given.
    """
    check_task(task)
    where = f"{source}: {unit} {line_number}" if source else f"{unit} {line_number}"
    expected = f"expected {PREDICT_FORMATS[task]}"
    text = line.strip()
    if not text:
        raise DataError(f"{where}: empty line; {expected}")
    if text.startswith("{"):
        try:
            record: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: not valid JSON ({error.msg}); {expected}") from None
    elif task in ("classification", "mlm"):
        record = {"text": line.rstrip("\r\n")}
    else:
        raise DataError(f"{where}: not a JSON object; {expected}")
    return parse_predict_record(task, record, line_number, source=source, unit=unit)


def parse_predict_record(
    task: str, record: Any, number: int, *, source: str | None = None, unit: str = "row"
) -> dict:
    """One input record of ``yoso predict`` (a parsed line, or a row of a table) validated like a line.

    DataError names ``source``, the ``unit`` (``"line"`` or ``"row"``) and its 1-based ``number``.
    """
    check_task(task)
    where = f"{source}: {unit} {number}" if source else f"{unit} {number}"
    expected = f"expected {PREDICT_FORMATS[task]}"
    if not isinstance(record, dict):
        raise DataError(f"{where}: not a JSON object; {expected}")
    if task == "token-classification" and "tokens" not in record and isinstance(record.get("text"), str):
        record = {**record, "tokens": record["text"].split()}
    try:
        return validate_record(task, record, labels=False)
    except RecordError as error:
        first = error
    key = LABEL_KEYS.get(task)
    if key is None or record.get(key) is None:  # nothing but the inputs to blame
        raise DataError(f"{where}: {first}; {expected}") from None
    try:  # the line once more without its label: when the inputs are fine, answer it unscored
        out = validate_record(task, {k: v for k, v in record.items() if k != key}, labels=False)
    except RecordError as error:
        raise DataError(f"{where}: {error}; {expected}") from None
    return {**out, LABEL_ERROR: f"{where}: {first}"}
