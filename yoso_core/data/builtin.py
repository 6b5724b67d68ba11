"""The built-in generated data sets of every task, deterministic from a seed (see docs/data.md).

Each task has a default set; a named one is chosen with ``--dataset builtin:NAME``. The recall set
takes its sizes after the name: ``builtin:recall:pairs=64,keys=128,values=16``.

    mlm                   corpus    paragraphs of the built-in English corpus
    classification        listops   ListOps (Long Range Arena)
    token-classification  tagging   corpus words tagged by documented rules
                          recall    multi-query associative recall (MQAR; long range)
    qa                    passkey   one pass key in a long document (default)
                          facts     four labelled facts at random depths, one asked for (long range)
    multiple-choice       choices   corpus sentence completion
"""

from __future__ import annotations

import random

from . import choices, corpus, facts, listops, passkey, recall, tagging

BUILTIN_PREFIX = "builtin:"
# The built-in sets of each task, the default first.
BUILTIN_SETS = {
    "mlm": ("corpus",),
    "classification": ("listops",),
    "token-classification": ("tagging", "recall"),
    "qa": ("passkey", "facts"),
    "multiple-choice": ("choices",),
}

# (train, validation) record counts when the caller gives none; mlm takes every corpus paragraph.
DEFAULT_COUNTS = {
    "classification": (4000, 400),
    "qa": (2000, 200),
    "token-classification": (4000, 400),
    "token-classification:recall": (8000, 200),
    "multiple-choice": (4000, 400),
}


def _mlm(seed: int, split: str, count: int | None) -> list[dict]:
    """Corpus paragraphs of ``split`` in a seeded order."""
    paras = [p for topic in corpus.paragraphs() for p in topic]
    texts = [p for i, p in enumerate(paras) if corpus.split_of(i, split)]
    random.Random(f"mlm-{seed}-{split}").shuffle(texts)
    return [{"text": t} for t in texts[:count]]


def parse_builtin_name(name: str) -> tuple[str, dict[str, int]]:
    """``"recall:pairs=64,values=16"`` -> ``("recall", {"pairs": 64, "values": 16})``; ValueError if bad."""
    base, _, rest = name.partition(":")
    params: dict[str, int] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(
                f"--dataset {BUILTIN_PREFIX}{name}: expected NAME:field=integer,... (e.g. "
                f"{BUILTIN_PREFIX}recall:pairs=64,values=16), got {item!r}"
            )
        params[key.strip()] = int(value)
    return base, params


def builtin_data(
    task: str,
    *,
    seed: int = 0,
    seq_len: int = 512,
    num_train: int | None = None,
    num_validation: int | None = None,
    name: str | None = None,
) -> dict[str, list[dict]]:
    """``{"train", "validation"}`` records of ``task``'s built-in set ``name`` (None: the default).

    Same seed, same records. ValueError naming the choices for a set ``task`` does not have.
    """
    names = BUILTIN_SETS[task]
    if name is None:
        name = names[0]
    name, params = parse_builtin_name(name)
    if name not in names:
        raise ValueError(
            f"--dataset {BUILTIN_PREFIX}{name}: the {task} task has no built-in set {name!r}; choose "
            + " or ".join(f"{BUILTIN_PREFIX}{n}" for n in names)
        )
    if task == "mlm":
        return {
            "train": _mlm(seed, "train", num_train),
            "validation": _mlm(seed, "validation", num_validation),
        }
    if params and name != "recall":
        given = ",".join(f"{k}={v}" for k, v in params.items())
        raise ValueError(f"--dataset {BUILTIN_PREFIX}{name} takes no parameters; drop ':{given}'")
    unknown = sorted(set(params) - set(recall.FIELDS))
    if unknown:
        raise ValueError(
            f"--dataset {BUILTIN_PREFIX}recall: unknown field {unknown[0]!r}; it takes "
            + ", ".join(recall.FIELDS)
        )
    default_train, default_validation = DEFAULT_COUNTS.get(f"{task}:{name}", DEFAULT_COUNTS[task])
    counts = {
        "train": default_train if num_train is None else num_train,
        "validation": default_validation if num_validation is None else num_validation,
    }
    out = {}
    for split, count in counts.items():
        split_seed = f"{seed}-{split}"
        if task == "classification":
            out[split] = listops.generate(split_seed, count, seq_len)
        elif task == "qa" and name == "facts":
            out[split] = facts.generate(split_seed, count, seq_len, split=split)
        elif task == "qa":
            out[split] = passkey.generate(split_seed, count, seq_len, split=split)
        elif task == "token-classification" and name == "recall":
            out[split] = recall.generate(split_seed, count, seq_len, **params)
        elif task == "token-classification":
            out[split] = tagging.generate(split_seed, count, seq_len, split=split)
        else:
            out[split] = choices.generate(split_seed, count, seq_len, split=split)
    return out
