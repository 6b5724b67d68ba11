"""Run a saved model over input lines: ``predict(model_dir, lines, ...)`` streams output dicts.

The task comes from the model directory's config (``task``, else its architecture). Lines are
read lazily and answered in batches of ``batch_size`` records, in input order, with ``"id"``
copied (see ``yoso_core.data.decode`` for each task's output). Blank lines are skipped. A malformed
line raises ``DataError`` naming its 1-based line number, after the answers of every earlier line
were yielded; with ``skip_invalid`` it is reported through ``on_error`` instead and skipped.
Labels in the input (a validation file) are not model inputs: they are scored against the answers,
and the task's metrics over the labelled lines go to ``on_metrics`` at the end (see ``score``).
Sampled hash functions are drawn from a fixed seed for every batch (one set shared by the batch;
padding is exact), so a line's answer is a function of the line alone: the same line gives the
same answer at any position of any input, whatever lines share its batch.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .saved import one_line_reason


class PredictError(ValueError):
    """A model directory that cannot serve predictions, or a bad option; the message says why."""


@dataclass
class Predictor:
    """A loaded model with what it needs to answer records."""

    task: str
    model: Any
    tokenizer: Any
    device: torch.device
    max_length: int
    id2label: dict[int, str] | None


def load_predictor(model_dir: str | Path, *, device: str = "auto") -> Predictor:
    """Load the model, tokenizer and task of a saved model directory."""
    from .data import load_tokenizer
    from .devices import DEVICES, pick_device
    from .modeling import TASK_MODELS
    from .saved import (
        has_tokenizer,
        load_saved_config,
        max_length_of,
        quiet_transformers,
        task_model_class,
        task_of,
    )

    quiet_transformers()
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise PredictError(
            f"--model {str(path)!r} is not a model directory (no config.json); give OUTPUT_DIR/final"
        )
    try:
        config = load_saved_config(path)  # YOSO, or the softmax baseline (RoBERTa)
    except ValueError as exc:
        raise PredictError(str(exc)) from None
    task = task_of(config)
    if task not in TASK_MODELS:
        raise PredictError(
            f"--model {str(path)!r} does not say which task it serves (no `task` or known `architectures` in "
            "config.json); fine-tune it with `yoso finetune` first"
        )
    if not has_tokenizer(path):
        raise PredictError(
            f"--model {str(path)!r} holds no tokenizer files; save the tokenizer beside the model"
        )
    if device not in DEVICES:
        raise PredictError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    try:
        target = pick_device(device)
    except ValueError as exc:
        raise PredictError(str(exc)) from None
    model = _load_weights(task_model_class(config, task), path).to(target).eval()
    max_length = max_length_of(config)
    try:
        tokenizer = load_tokenizer(str(path), max_length=max_length)
    except Exception as exc:  # a broken tokenizer.json raises JSON, tokenizers or OS errors
        raise PredictError(
            f"--model {str(path)!r}: cannot load its tokenizer ({one_line_reason(exc)}); save the tokenizer "
            "again beside the model (or copy it from the run's output directory)"
        ) from None
    id2label = {int(k): v for k, v in config.id2label.items()} if task in _LABELLED else None
    return Predictor(task, model, tokenizer, target, max_length, id2label)


_LABELLED = ("classification", "token-classification")


def _load_weights(model_class: Any, path: Path) -> Any:
    """The model of ``path``, refusing weight files that are missing, truncated or short of any of
    the model's tensors (``saved.load_pretrained``, the rule finetune and convert follow too)."""
    from .errors import ConfigError
    from .saved import load_pretrained

    try:
        return load_pretrained(model_class, path)
    except ConfigError as exc:
        raise PredictError(str(exc)) from None


def encode_record(predictor: Predictor, record: dict) -> list[dict]:
    """The features of one record (several windows for long inputs); EncodingError says why not."""
    from .data import encode

    return encode(predictor.task, [record], predictor.tokenizer, seq_len=predictor.max_length)


def answer(
    predictor: Predictor,
    records: list[dict],
    batch_size: int,
    features: list[list[dict]] | None = None,
    *,
    seed: int = 0,
) -> list[dict]:
    """Output dicts for ``records`` (in order): encode, run in batches of features, decode.

    ``features`` holds each record's ``encode_record`` result when the caller encoded them already.
    Every batch draws its sampled hash functions from ``seed`` afresh (they are shared across the
    batch, and padding is exact), so a record's answer does not depend on what it is batched with.
    """
    from .data import collate, decode
    from .inference import feature_outputs, run_model

    if not records:
        return []
    if features is None:
        features = [encode_record(predictor, record) for record in records]
    features = [{**f, "example_index": i} for i, group in enumerate(features) for f in group]
    pad = collate(predictor.task, predictor.tokenizer, mask=False, pad_choices=True)

    def batch_inputs(chunk: list[dict]) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)  # run_model calls the model right after this: same hashes every batch
        batch = pad(chunk)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    outputs: list[dict] = []
    for chunk, _, out in run_model(
        predictor.model,
        features,
        batch_inputs,
        batch_size=batch_size,
        device=predictor.device,
    ):
        outputs += feature_outputs(predictor.task, chunk, out)
    return decode(
        predictor.task, records, features, outputs, predictor.tokenizer, id2label=predictor.id2label
    )


def open_input(path: str | Path) -> tuple[Iterator[bytes | dict | Exception], str]:
    """The items of a predict input file and what they are called in messages (``"line"``/``"row"``).

    ``.parquet`` and ``.csv`` files give one dict per row (empty csv cells are missing values, list
    columns are JSON text as in training files; a csv row that is not UTF-8 is a DataError item,
    which ``predict`` treats as a malformed row); any other file gives its lines as bytes. Raises
    DataError before anything is answered when the file cannot be opened as its type.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        from .data import DataError

        try:
            table = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise DataError(
                f"{path}: cannot read it as parquet ({one_line_reason(exc)}); "
                "give a parquet file, or JSON lines"
            ) from None
        return _parquet_rows(path, table), "row"
    if suffix == ".csv":
        return _csv_rows(path), "row"
    return _byte_lines(path), "line"


def _byte_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from f


def _parquet_rows(path: Path, table: Any) -> Iterator[dict]:
    from .data import DataError

    rows = 0
    batches = table.iter_batches(batch_size=256)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:  # a damaged row group
            raise DataError(
                f"{path}: cannot read the rows after row {rows} ({one_line_reason(exc)})"
            ) from None
        for row in batch.to_pylist():
            rows += 1
            yield row


def _csv_rows(path: Path) -> Iterator[dict | Exception]:
    """Rows of a csv file; a row holding bytes that are not UTF-8 is a DataError item (skippable)."""
    import csv

    from .data import DataError

    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.DictReader(f)
        for number, row in enumerate(reader, start=1):
            values = [*row.keys(), *(v for v in row.values() if isinstance(v, str))]
            bad = next((v for v in values if isinstance(v, str) and _SURROGATE.search(v)), None)
            if bad is not None:
                byte = ord(_SURROGATE.search(bad).group()) - 0xDC00
                yield DataError(
                    f"{path}: row {number}: not valid UTF-8 (byte 0x{byte:02x}, near line "
                    f"{reader.line_num}); save the input as UTF-8"
                )
                continue
            yield {k: (v if v != "" else None) for k, v in row.items() if k is not None}


_SURROGATE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8


def _stderr_error(error: dict) -> None:
    print(json.dumps(error), file=sys.stderr, flush=True)


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _stderr_metrics(metrics: dict) -> None:
    print(json.dumps({"metrics": metrics}), file=sys.stderr, flush=True)


def score(task: str, golds: list[Any], answers: list[dict]) -> dict[str, float]:
    """The task's metrics of ``answers`` against the gold labels of the same lines, plus ``"lines"``.

    The figures are ``metrics.task_metrics``'s, as training's evaluation reports them:
    classification accuracy and macro-F1; multiple-choice accuracy; token-classification entity
    precision, recall and F1 and token accuracy (a null gold tag is a word without a label, left
    out); qa SQuAD exact match and F1 (in %).
    """
    from .metrics import task_metrics

    if task == "classification":
        predictions, golds = [a["label"] for a in answers], [str(g) for g in golds]
    elif task == "multiple-choice":
        predictions = [a["choice"] for a in answers]
    elif task == "token-classification":
        predictions = [a["tags"] for a in answers]
    elif task == "qa":
        predictions, golds = [a["answer"] for a in answers], [g["text"] for g in golds]
    else:
        return {"lines": len(golds)}
    result: dict[str, float] = {"lines": len(golds)}
    result.update(task_metrics(task, predictions, golds))
    return result


def predict(
    model_dir: str | Path | Predictor,
    lines: Iterable[str | bytes | dict | Exception],
    batch_size: int = 16,
    skip_invalid: bool = False,
    *,
    on_error: Callable[[dict], None] | None = None,
    on_metrics: Callable[[dict], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    device: str = "auto",
    seed: int = 0,
    source: str | None = None,
    unit: str = "line",
) -> Iterator[dict]:
    """Output dicts for the input ``lines`` (see the module docstring), streamed batch by batch.

    ``lines`` may be text or bytes (UTF-8, decoded line by line: bytes that are not UTF-8 make that
    line malformed), or dicts (rows of a table, see ``open_input``). ``source`` (the input's file
    name) prefixes error messages when given; ``unit`` is what messages call an item.
    ``on_error`` receives ``{"line", "error"}`` for each skipped line (default: one JSON line on stderr).
    ``on_metrics`` receives ``score(...)`` of the labelled lines once all lines are answered, when
    any line carried a label (default: ``{"metrics": {...}}`` as one JSON line on stderr).
    ``on_warning`` receives, once at the end, how many classification or multiple-choice lines were
    longer than the model's positions and cut to fit (default: a ``warning:`` line on stderr).
    """
    from .data import DataError, parse_predict_line
    from .data.encoding import EncodingError
    from .data.predict_input import LABEL_ERROR, LABEL_KEYS, decode_line, parse_predict_record

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PredictError(f"--batch-size must be a positive integer, got {batch_size!r}")
    predictor = model_dir if isinstance(model_dir, Predictor) else load_predictor(model_dir, device=device)
    report = on_error or _stderr_error
    label_key = LABEL_KEYS.get(predictor.task)
    golds: list[Any] = []  # gold label of each labelled line, in order
    scored: list[dict] = []  # the answers of those lines
    devices = [predictor.device] if predictor.device.type == "cuda" else []
    pending: list[dict] = []
    encoded: list[list[dict]] = []  # the features of each pending record
    labelled: list[bool] = []  # of each pending record: does it carry a label
    cut = [0, 0]  # lines cut to the model's length, and their tokens dropped
    unscored: list[str] = []  # why each line with a malformed label was left out of the metrics

    def flush() -> Iterator[dict]:
        for result, has_label in zip(answer(predictor, pending, batch_size, encoded, seed=seed), labelled):
            if has_label:
                scored.append(result)
            yield result
        pending.clear()
        encoded.clear()
        labelled.clear()

    with torch.random.fork_rng(devices=devices):  # the caller's RNG is left as it was
        items = iter(lines)
        number = 0
        while True:
            try:
                line = next(items)
            except StopIteration:
                break
            except DataError:  # the input itself cannot be read on: answer what was read first
                yield from flush()
                raise
            number += 1
            where = f"{source}: {unit} {number}" if source else f"{unit} {number}"
            try:
                if isinstance(line, Exception):  # an item the reader could not make out
                    raise line
                if isinstance(line, dict):
                    record = parse_predict_record(predictor.task, line, number, source=source, unit=unit)
                else:
                    if isinstance(line, bytes):
                        line = decode_line(line, number, source=source)
                    if not line.strip():
                        continue
                    record = parse_predict_line(
                        predictor.task, line.rstrip("\r\n"), number, source=source, unit=unit
                    )
                gold = record.pop(label_key, None)  # a label is not a model input
                if LABEL_ERROR in record:
                    unscored.append(record.pop(LABEL_ERROR))
                try:
                    features = encode_record(predictor, record)
                except EncodingError as exc:  # name the input line, not the position in a batch
                    raise DataError(f"{where}: {exc.reason}") from None
                dropped = max((f.get("cut_tokens", 0) for f in features), default=0)
                if dropped:
                    cut[0] += 1
                    cut[1] += dropped
            except DataError as exc:
                if not skip_invalid:
                    yield from flush()
                    raise
                report({unit: number, "error": str(exc)})
                continue
            labelled.append(gold is not None)
            if gold is not None:
                golds.append(gold)
            pending.append(record)
            encoded.append(features)
            if len(pending) == batch_size:
                yield from flush()
        yield from flush()
    if cut[0]:
        (on_warning or _stderr_warning)(
            f"{cut[0]} input {unit}(s) were longer than the model's {predictor.max_length} tokens and were "
            f"cut to fit ({cut[1]} token(s) dropped in all; {predictor.task} reads only the first "
            f"{predictor.max_length}): shorten them, or use a model with more positions"
        )
    if unscored:
        (on_warning or _stderr_warning)(
            f"{len(unscored)} {unit}(s) carried a malformed label and were answered but left out of the "
            f"metrics (first: {unscored[0]})"
        )
    if golds:
        (on_metrics or _stderr_metrics)(score(predictor.task, golds, scored))
