"""Multi-query associative recall (MQAR): the built-in recall set (``--dataset builtin:recall``).

A record is a token-classification sequence of ``seq_len - 2`` words: with ``<s>`` and ``</s>``
it fills one window of ``seq_len`` tokens when each word is one token, as with the tokenizer a
run trains. It opens with ``pairs`` key-value pairs ``kar vad kjq vbm ...``: distinct keys drawn
from ``keys`` key words (``kaa kab ...``), values drawn with replacement from ``values`` value
words (``vaa vab ...``; letters only, so that a byte-level BPE keeps each word whole). Then comes
a query region of ``seq_len - 2 - 2 * pairs`` words in which every key of the pairs appears once
more, in a random order at random places, with the filler word ``.`` everywhere else. A query's
tag is the value its key was paired with; every other word carries no tag (``null``: skipped by
the loss and the metrics), so every query is a training signal and the metric is the accuracy over
queries (``token_accuracy``). Chance is ``1 / values``.

As in Arora et al. 2023 ("Zoology"), the model must find the earlier occurrence of the query's key
and read the word next to it; the number of pairs and the key-to-query distance grow with
``seq_len``. Defaults: ``pairs = seq_len // 8`` (64 at 512, 256 at 2,048), ``keys = 2 * pairs``
(at least 64), ``values = 64``. Every split draws new random sequences from its own seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

FILLER = "."
KEY_PREFIX, VALUE_PREFIX = "k", "v"


@dataclass(frozen=True)
class RecallShape:
    """The size of the recall problem at one length: pairs per record, key and value vocabularies."""

    pairs: int
    keys: int
    values: int

    @property
    def chance(self) -> float:
        """Accuracy of guessing a value uniformly at random."""
        return 1.0 / self.values


FIELDS = tuple(f.name for f in fields(RecallShape))  # the sizes builtin:recall:FIELD=N sets


def recall_shape(
    seq_len: int, *, pairs: int | None = None, keys: int | None = None, values: int | None = None
) -> RecallShape:
    """The shape of ``seq_len``'s records (defaults: the module docstring); ValueError if it cannot fit."""
    words = seq_len - 2
    pairs = max(1, seq_len // 8) if pairs is None else pairs
    keys = max(64, 2 * pairs) if keys is None else keys
    values = 64 if values is None else values
    for name, value in (("pairs", pairs), ("keys", keys), ("values", values)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"builtin:recall {name} must be a positive integer, got {value!r}")
    if 3 * pairs > words:
        raise ValueError(
            f"builtin:recall: {pairs} pairs and their queries need {3 * pairs} words, but --seq-len "
            f"{seq_len} holds {words}; use pairs={words // 3} or less, or a longer --seq-len"
        )
    if keys < pairs:
        raise ValueError(
            f"builtin:recall: {pairs} distinct keys per record need keys >= {pairs}, got keys={keys}"
        )
    return RecallShape(pairs, keys, values)


def word(prefix: str, index: int, count: int) -> str:
    """The ``index``-th of ``count`` words: ``prefix`` and ``index`` in base 26, as letters of one width."""
    width, letters = 2, []
    while 26**width < count:
        width += 1
    for _ in range(width):
        index, digit = divmod(index, 26)
        letters.append(chr(ord("a") + digit))
    return prefix + "".join(reversed(letters))


def key_words(shape: RecallShape) -> list[str]:
    """The ``shape.keys`` key words, in index order."""
    return [word(KEY_PREFIX, i, shape.keys) for i in range(shape.keys)]


def value_words(shape: RecallShape) -> list[str]:
    """The ``shape.values`` value words, in index order (the label of value ``i`` is its ``i``-th)."""
    return [word(VALUE_PREFIX, i, shape.values) for i in range(shape.values)]


def vocabulary(shape: RecallShape) -> list[str]:
    """Every word a record of ``shape`` can hold: keys, values and the filler."""
    return [*key_words(shape), *value_words(shape), FILLER]


def generate(
    seed: int | str,
    count: int,
    seq_len: int,
    *,
    pairs: int | None = None,
    keys: int | None = None,
    values: int | None = None,
) -> list[dict]:
    """``count`` records ``{"tokens", "tags"}`` of ``seq_len - 2`` words from ``seed`` (module docstring)."""
    shape = recall_shape(seq_len, pairs=pairs, keys=keys, values=values)
    rng = random.Random(f"recall-{seed}")
    region = seq_len - 2 - 2 * shape.pairs
    all_keys, all_values = key_words(shape), value_words(shape)
    records = []
    for _ in range(count):
        chosen = rng.sample(range(shape.keys), shape.pairs)
        paired = [rng.randrange(shape.values) for _ in chosen]
        tokens: list[str] = []
        tags: list[str | None] = []
        keys_of = [all_keys[k] for k in chosen]
        values_of = [all_values[v] for v in paired]
        for key, value in zip(keys_of, values_of, strict=True):
            tokens += [key, value]
            tags += [None, None]
        query_tokens, query_tags = [FILLER] * region, [None] * region
        order = rng.sample(range(shape.pairs), shape.pairs)
        for slot, j in zip(sorted(rng.sample(range(region), shape.pairs)), order, strict=True):
            query_tokens[slot] = keys_of[j]
            query_tags[slot] = values_of[j]
        records.append({"tokens": tokens + query_tokens, "tags": tags + query_tags})
    return records
