"""The built-in multiple-choice set: which word fills the blank of a corpus sentence.

The context is a corpus sentence with one word replaced by ``___``: a lower-case word of at least
three letters, not the first word, chosen uniformly. The four choices are that word and three
distractors drawn uniformly from the distinct words of the same kind in the split's sentences
(never a word of the sentence itself), in random order; the label is the index of the right one.
The answer comes from running text and the distractors from the vocabulary, so word frequency
alone beats chance (25%) and the context does better.
"""

from __future__ import annotations

import random
import re

from . import corpus

BLANK = "___"
NUM_CHOICES = 4
_WORD = re.compile(r"[a-z]{3,}")
_SPAN = re.compile(r"\S+")
_CORE = re.compile(r"^\W*(\w+)\W*$")


def _candidates(sentence: str) -> list[tuple[int, int]]:
    """Char spans of the words that may be blanked: lower-case, 3+ letters, not the first word."""
    out = []
    for k, match in enumerate(_SPAN.finditer(sentence)):
        core = _CORE.match(match.group())
        if k > 0 and core and _WORD.fullmatch(core.group(1)):
            out.append((match.start() + core.start(1), match.start() + core.end(1)))
    return out


def generate(seed: int | str, count: int, seq_len: int, *, split: str = "train") -> list[dict]:
    """``count`` records ``{"context", "choices", "label"}`` from ``seed`` (sentences of ``split``)."""
    del seq_len  # one sentence always fits
    rng = random.Random(f"choices-{seed}")
    pool = [s for i, s in enumerate(corpus.sentences()) if corpus.split_of(i, split) and _candidates(s)]
    vocabulary = sorted({w for s in pool for w in re.findall(r"\w+", s) if _WORD.fullmatch(w)})
    records = []
    for _ in range(count):
        sentence = rng.choice(pool)
        start, end = rng.choice(_candidates(sentence))
        answer, context = sentence[start:end], sentence[:start] + BLANK + sentence[end:]
        present = set(re.findall(r"\w+", sentence))
        choices = [answer]
        while len(choices) < NUM_CHOICES:
            word = rng.choice(vocabulary)
            if word not in present and word not in choices:
                choices.append(word)
        rng.shuffle(choices)
        records.append({"context": context, "choices": choices, "label": choices.index(answer)})
    return records
