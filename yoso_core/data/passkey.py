"""Long-context pass-key retrieval: the built-in extractive QA set.

A document is a run of consecutive corpus sentences starting at a random sentence, long enough to
be a bit over ``seq_len`` tokens (``seq_len`` words; the built-in tokenizer spends about 1.3
tokens per word of this corpus), so a model with a ``seq_len`` window needs the strided windows.
The sentence ``"The pass key is NNNNN. Remember it."`` (NNNNN a random 5-digit number) is planted
between two sentences at a uniformly random depth. The question is always
``"What is the pass key?"`` and the answer is the number, in SQuAD form with ``answer_start``
pointing at its first digit.
"""

from __future__ import annotations

import random

from . import corpus

QUESTION = "What is the pass key?"
_TEMPLATE = "The pass key is {key}. Remember it."
_PREFIX = "The pass key is "


def generate(seed: int | str, count: int, seq_len: int, *, split: str = "train") -> list[dict]:
    """``count`` pass-key QA records from ``seed``, contexts of about ``seq_len`` words."""
    rng = random.Random(f"passkey-{seed}")
    pool = [s for i, s in enumerate(corpus.sentences()) if corpus.split_of(i, split)]
    records = []
    for _ in range(count):
        sentences = corpus.filler(rng, pool, max(seq_len, 8))
        key = str(rng.randint(10000, 99999))
        sentences.insert(rng.randint(0, len(sentences)), _TEMPLATE.format(key=key))
        context = " ".join(sentences)
        start = context.index(_TEMPLATE.format(key=key)) + len(_PREFIX)
        records.append(
            {"question": QUESTION, "context": context, "answers": {"text": [key], "answer_start": [start]}}
        )
    return records
