"""The built-in token-classification set: BIO tags given to corpus text by a fixed rule.

A record is one to three consecutive corpus sentences (fewer when they pass ``seq_len / 2``
words), cut into tokens: numbers (``3``, ``2.5``), words (letters, digits and ``_``, with inner
``'`` or ``-``) and single punctuation marks. Each token is tagged by the first rule that fits:

- ``B-NUM``: a number;
- ``B-KW``: a Python keyword (``keyword.kwlist``: ``if``, ``in``, ``None``, ...), whatever its role;
- ``B-CAP`` / ``I-CAP``: a word starting with a capital letter; a run of such words is one span;
- ``O``: everything else.

Every rule reads the token itself (and, for ``I-CAP``, its left neighbour), so the tags are learnable.
"""

from __future__ import annotations

import keyword
import random
import re

from . import corpus

TAGS = ("O", "B-CAP", "I-CAP", "B-KW", "B-NUM")
_TOKEN = re.compile(r"\d+(?:\.\d+)*|\w+(?:['-]\w+)*|[^\w\s]")
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_KEYWORDS = frozenset(keyword.kwlist)


def tokenize(text: str) -> list[str]:
    """The rule's tokens of ``text``: numbers, words and single punctuation marks."""
    return _TOKEN.findall(text)


def tag(tokens: list[str]) -> list[str]:
    """The rule's BIO tag of every token."""
    tags: list[str] = []
    for token in tokens:
        if _NUMBER.fullmatch(token):
            tags.append("B-NUM")
        elif token in _KEYWORDS:
            tags.append("B-KW")
        elif token[0].isupper():
            tags.append("I-CAP" if tags and tags[-1] in ("B-CAP", "I-CAP") else "B-CAP")
        else:
            tags.append("O")
    return tags


def generate(seed: int | str, count: int, seq_len: int, *, split: str = "train") -> list[dict]:
    """``count`` records ``{"tokens", "tags"}`` from ``seed`` (corpus sentences of ``split``)."""
    rng = random.Random(f"tagging-{seed}")
    pool = [s for i, s in enumerate(corpus.sentences()) if corpus.split_of(i, split)]
    records = []
    for _ in range(count):
        start, want = rng.randrange(len(pool)), rng.randint(1, 3)
        tokens: list[str] = []
        for k in range(want):
            more = tokenize(pool[(start + k) % len(pool)])
            if tokens and len(tokens) + len(more) > seq_len // 2:
                break
            tokens += more
        records.append({"tokens": tokens, "tags": tag(tokens)})
    return records
