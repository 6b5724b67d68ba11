"""The built-in generated data set of every task, deterministic from a seed (see docs/data.md)."""

from __future__ import annotations

import random

from . import choices, corpus, listops, passkey, tagging

# (train, validation) record counts when the caller gives none; mlm takes every corpus paragraph.
DEFAULT_COUNTS = {
    "classification": (4000, 400),
    "qa": (2000, 200),
    "token-classification": (4000, 400),
    "multiple-choice": (4000, 400),
}


def _mlm(seed: int, split: str, count: int | None) -> list[dict]:
    """Corpus paragraphs of ``split`` in a seeded order."""
    paras = [p for topic in corpus.paragraphs() for p in topic]
    texts = [p for i, p in enumerate(paras) if corpus.split_of(i, split)]
    random.Random(f"mlm-{seed}-{split}").shuffle(texts)
    return [{"text": t} for t in texts[:count]]


def builtin_data(
    task: str,
    *,
    seed: int = 0,
    seq_len: int = 512,
    num_train: int | None = None,
    num_validation: int | None = None,
) -> dict[str, list[dict]]:
    """``{"train", "validation"}`` records of ``task``'s built-in set; same seed, same records."""
    if task == "mlm":
        return {
            "train": _mlm(seed, "train", num_train),
            "validation": _mlm(seed, "validation", num_validation),
        }
    default_train, default_validation = DEFAULT_COUNTS[task]
    counts = {
        "train": default_train if num_train is None else num_train,
        "validation": default_validation if num_validation is None else num_validation,
    }
    out = {}
    for split, count in counts.items():
        split_seed = f"{seed}-{split}"
        if task == "classification":
            out[split] = listops.generate(split_seed, count, seq_len)
        elif task == "qa":
            out[split] = passkey.generate(split_seed, count, seq_len, split=split)
        elif task == "token-classification":
            out[split] = tagging.generate(split_seed, count, seq_len, split=split)
        else:
            out[split] = choices.generate(split_seed, count, seq_len, split=split)
    return out
