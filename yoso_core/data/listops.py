"""ListOps (Nangia & Bowman 2018) as the Long Range Arena uses it: the built-in classification set.

An expression is a digit 0-9 or ``[OP arg arg ... ]`` with OP one of

    MAX  largest argument         MIN  smallest argument
    MED  median (``int(median)``: the mean of the two middle values, rounded down, for even counts)
    SM   sum of the arguments modulo 10

written with the tokens separated by single spaces, e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` -> 9. The
label is the value, one of 10 classes "0".."9".

The LRA release draws up to 10 arguments and depth up to 10 for 500-2,000 tokens, which small models
learn slowly. This built-in set keeps the grammar and the labels but mixes lengths so that a tiny
model beats chance (10%) within a few hundred steps:

- 75% short: nesting depth at most 1-3 (uniform), 2-5 arguments per list, each argument below the maximum
  depth a nested list with probability 0.3;
- 25% long: one top-level list whose arguments (digits, or short lists of depth <= 2 with
  probability 0.1) are added until a token budget drawn uniformly from [seq_len/4, seq_len - 2] is
  reached, so the longest expressions nearly fill the model's window.

Lengths are counted in the model's sub-word tokens: the byte-level BPE tokenizer splits an
opening ``[MAX`` into ``[`` and ``MAX`` and keeps every digit and ``]`` whole, so an opening costs
two tokens and every other symbol one. Every expression has at most ``seq_len - 2`` such tokens
(room for ``<s>`` and ``</s>``), so nothing is cut off, and at ``--seq-len 2048`` the longest reach
the Long Range Arena's 2,000 tokens. The operator of every list is uniform over the four.
"""

from __future__ import annotations

import random
import statistics

OPERATORS = ("MAX", "MIN", "MED", "SM")
_SHORT_FRACTION = 0.75
_SHORT_ARGS = (2, 5)
_NEST_PROBABILITY = 0.3
_LONG_NEST_PROBABILITY = 0.1
_DIGITS = tuple(str(d) for d in range(10))


def apply(op: str, values: list[int]) -> int:
    """The value of operator ``op`` on its argument values."""
    if op == "MAX":
        return max(values)
    if op == "MIN":
        return min(values)
    if op == "MED":
        return int(statistics.median(values))
    if op == "SM":
        return sum(values) % 10
    raise ValueError(f"unknown ListOps operator {op!r}")


def _tree(rng: random.Random, depth: int, nest: float) -> tuple[list[str], int]:
    """A random expression of nesting depth <= ``depth``: (tokens, value)."""
    if depth == 0:
        digit = rng.randrange(10)
        return [str(digit)], digit
    op = rng.choice(OPERATORS)
    tokens, values = ["[" + op], []
    for _ in range(rng.randint(*_SHORT_ARGS)):
        sub_tokens, value = _tree(rng, depth - 1, nest) if rng.random() < nest else _tree(rng, 0, nest)
        tokens += sub_tokens
        values.append(value)
    tokens.append("]")
    return tokens, apply(op, values)


def cost(tokens: list[str]) -> int:
    """Sub-word tokens of ListOps symbols: an opening ``[OP`` is two (``[`` and ``OP``), others one."""
    return len(tokens) + sum(1 for t in tokens if t.startswith("["))


def _short(rng: random.Random, max_tokens: int) -> tuple[list[str], int]:
    while True:
        depth = rng.randint(1, 3)
        tokens, value = _tree(rng, depth, _NEST_PROBABILITY)
        if cost(tokens) <= max_tokens:
            return tokens, value


def _long(rng: random.Random, max_tokens: int) -> tuple[list[str], int]:
    budget = rng.randint(max(4, max_tokens // 4), max_tokens)
    op = rng.choice(OPERATORS)
    tokens, values = ["[" + op], []
    used = 2  # the opening's two sub-words
    while True:
        draw = rng.random()  # one draw picks the kind and, for a digit, its value
        if draw < _LONG_NEST_PROBABILITY:
            sub_tokens, value = _tree(rng, rng.randint(1, 2), _NEST_PROBABILITY)
        else:
            value = min(9, int((draw - _LONG_NEST_PROBABILITY) / (1 - _LONG_NEST_PROBABILITY) * 10))
            sub_tokens = [_DIGITS[value]]
        sub_cost = cost(sub_tokens)
        if used + sub_cost + 1 > budget:
            if values:
                break
            continue
        tokens += sub_tokens
        used += sub_cost
        values.append(value)
    tokens.append("]")
    return tokens, apply(op, values)


def generate(seed: int | str, count: int, seq_len: int) -> list[dict]:
    """``count`` ListOps records ``{"text", "label"}`` from ``seed``, each of <= ``seq_len - 2`` sub-words."""
    rng = random.Random(f"listops-{seed}")
    max_tokens = max(seq_len - 2, 8)
    records = []
    for _ in range(count):
        make = _short if rng.random() < _SHORT_FRACTION else _long
        tokens, value = make(rng, max_tokens)
        records.append({"text": " ".join(tokens), "label": str(value)})
    return records
