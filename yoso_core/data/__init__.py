"""Data for every task: built-in generated sets, local files, tokenizers, features, batches, outputs.

The flow of a training run is ``load_task_data`` (validated records) -> ``label_names`` ->
``build_tokenizer`` or ``load_tokenizer`` -> ``encode`` (features: python lists of ints) ->
``collate`` (padded tensors for the model). ``yoso predict`` reads lines with
``parse_predict_line``, encodes them the same way and turns model outputs into JSON-ready dicts
with ``decode``.

Tasks: ``TASKS = ("mlm", "classification", "token-classification", "qa", "multiple-choice")``.
"""

from __future__ import annotations

from .collate import collate
from .decoding import decode
from .encoding import encode
from .loading import label_names, load_task_data
from .predict_input import parse_predict_line
from .schema import TASKS, DataError
from .tokenizer import build_tokenizer, load_tokenizer, training_texts

__all__ = [
    "TASKS",
    "DataError",
    "load_task_data",
    "label_names",
    "build_tokenizer",
    "load_tokenizer",
    "training_texts",
    "encode",
    "collate",
    "parse_predict_line",
    "decode",
]
