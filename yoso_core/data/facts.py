"""Multi-fact retrieval: the built-in long-range extractive QA set (``--dataset builtin:facts``).

A document is a run of consecutive corpus sentences starting at a random sentence, about
``0.55 * seq_len`` words long, so that at long lengths with the built-in 8,000-token tokenizer
(about 1.3 tokens per word of this corpus) it fills one window of ``seq_len`` tokens with the
question; at short lengths or with a small vocabulary many take two (docs/data.md has the
measurements; the budget is kept so recorded results stay reproducible). Into it go
``FACTS`` (4) sentences ``"The KEY code is NNNN."`` at uniformly random depths (between two
sentences, each at its own place), with four different keys drawn from ``KEYS`` and four
different 4-digit values. The question names one of the four keys, ``"What is the KEY code?"``,
and the answer is that key's value, in SQuAD form with ``answer_start`` pointing at its first
digit.

Unlike the pass key, the answer cannot be found by looking for the one number in the document:
three other numbers sit in the same kind of sentence, so the model must match the key of the
question to the key of a fact that can be thousands of tokens away.
"""

from __future__ import annotations

import random

from . import corpus

FACTS = 4
WORDS_PER_TOKEN = 0.55
KEYS = (
    "amber", "birch", "cobalt", "delta", "ember", "falcon", "garnet", "harbor", "indigo", "juniper",
    "kestrel", "lotus", "maple", "nickel", "onyx", "pepper", "quartz", "raven", "saffron", "tulip",
    "umber", "violet", "walnut", "yarrow",
)  # fmt: skip
_TEMPLATE = "The {key} code is {value}."
QUESTION = "What is the {key} code?"


def generate(
    seed: int | str, count: int, seq_len: int, *, split: str = "train", facts: int = FACTS
) -> list[dict]:
    """``count`` multi-fact QA records from ``seed``: ``facts`` facts in about ``seq_len`` tokens each."""
    if not 1 <= facts <= len(KEYS):
        raise ValueError(f"facts must be in [1, {len(KEYS)}], got {facts}")
    rng = random.Random(f"facts-{seed}")
    pool = [s for i, s in enumerate(corpus.sentences()) if corpus.split_of(i, split)]
    records = []
    for _ in range(count):
        sentences = corpus.filler(rng, pool, max(int(seq_len * WORDS_PER_TOKEN), 4))
        keys = rng.sample(KEYS, facts)
        values = [str(v) for v in rng.sample(range(1000, 10000), facts)]
        # final positions of the facts among the sentences: distinct, in order
        gaps = sorted(rng.sample(range(len(sentences) + facts), facts))
        planted = [_TEMPLATE.format(key=k, value=v) for k, v in zip(keys, values, strict=True)]
        for gap, sentence in zip(gaps, planted, strict=True):
            sentences.insert(gap, sentence)
        asked = rng.randrange(facts)
        context = " ".join(sentences)
        fact = planted[asked]
        start = context.index(fact) + len(fact) - len(values[asked]) - 1
        records.append(
            {
                "question": QUESTION.format(key=keys[asked]),
                "context": context,
                "answers": {"text": [values[asked]], "answer_start": [start]},
            }
        )
    return records
