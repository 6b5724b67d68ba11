"""The built-in English corpus: the help texts of Python's own ``pydoc_data.topics``.

Every Python installation ships these texts, so the built-in data sets need no download. Topics
are read in sorted order; each topic is cut at blank lines into blocks; a block is prose when it
ends with ``.``, ``!`` or ``?``, holds no grammar rule or interpreter prompt, and at least 60% of
its words are plain words (code samples and tables are mostly symbols). Heading underlines are
dropped. Prose blocks become paragraphs (lines joined with single spaces) and paragraphs are cut into
sentences after ``.``, ``!`` or ``?`` followed by a space and an upper-case letter or a quote.
The text differs a little between Python versions, so "deterministic" means for one Python.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import lru_cache

_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=["A-Z])')
_UNDERLINE = re.compile(r"^[*=\-~^]{3,}$")
_MIN_SENTENCE_WORDS = 4
_MAX_SENTENCE_WORDS = 60
_CODE_STARTS = (">>>", "...", "#", "|", "+-", "def ", "class ")
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z'-]*[,.;:]?")


def _prose(block: str) -> str | None:
    """The block as one line of prose, or None when it is code, grammar, a table or a heading."""
    lines = [
        line.strip() for line in block.splitlines() if line.strip() and not _UNDERLINE.match(line.strip())
    ]
    text = " ".join(lines)
    if not lines or "::=" in text or " # " in text or any(line.startswith(_CODE_STARTS) for line in lines):
        return None
    words = text.split()
    if len(words) < _MIN_SENTENCE_WORDS or text[-1] not in ".!?":
        return None
    # Prose is mostly plain words; code and tables are mostly symbols.
    plain = sum(1 for word in words if _PLAIN_WORD.fullmatch(word))
    return text if plain >= 0.6 * len(words) else None


@lru_cache(maxsize=1)
def paragraphs() -> tuple[tuple[str, ...], ...]:
    """Distinct prose paragraphs grouped by topic, in sorted topic order: ``((para, ...), ...)``."""
    from pydoc_data.topics import topics

    grouped, seen = [], set()
    for name in sorted(topics):
        paras = []
        for para in map(_prose, re.split(r"\n\s*\n", topics[name])):
            if para and para not in seen:  # some topics repeat paragraphs of others
                seen.add(para)
                paras.append(para)
        if paras:
            grouped.append(tuple(paras))
    return tuple(grouped)


@lru_cache(maxsize=1)
def sentences() -> tuple[str, ...]:
    """Distinct corpus sentences in corpus order (4 to 60 words, ending in ., ! or ?)."""
    out: dict[str, None] = {}
    for topic in paragraphs():
        for para in topic:
            for sentence in _SENTENCE_END.split(para):
                n = len(sentence.split())
                if _MIN_SENTENCE_WORDS <= n <= _MAX_SENTENCE_WORDS and sentence[-1] in ".!?":
                    out[sentence] = None  # an ordered set: the first occurrence wins
    return tuple(out)


def split_of(index: int, split: str) -> bool:
    """Whether item ``index`` of the corpus belongs to ``split``: every tenth goes to validation.

    A fixed interleaved split keeps validation text out of training for every seed.
    """
    return (index % 10 == 9) == (split == "validation")


def filler(rng: random.Random, pool: Sequence[str], words: int) -> list[str]:
    """Consecutive sentences of ``pool`` from a random start, at least ``words`` words in all."""
    start = rng.randrange(len(pool))
    out, total = [], 0
    while total < words:
        sentence = pool[(start + len(out)) % len(pool)]
        out.append(sentence)
        total += len(sentence.split())
    return out
