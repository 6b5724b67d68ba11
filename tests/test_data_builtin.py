"""Built-in generated data sets: deterministic, well-formed, and labelled by their documented rules."""

from __future__ import annotations

import re

import pytest

from yoso_core.data import TASKS, corpus, load_task_data, tagging
from yoso_core.data import choices as mc
from yoso_core.data.schema import validate_record

SMALL = dict(seq_len=96, num_train=40, num_validation=8)


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_records_other_seed_other_records(task):
    first = load_task_data(task, seed=3, **SMALL)
    assert first == load_task_data(task, seed=3, **SMALL)
    other = load_task_data(task, seed=4, **SMALL)
    assert first["train"] != other["train"]
    assert first["validation"] != other["validation"]


@pytest.mark.parametrize("task", TASKS)
def test_records_are_valid_and_counts_follow_the_caps(task):
    data = load_task_data(task, seed=0, **SMALL)
    assert (len(data["train"]), len(data["validation"])) == (40, 8)
    for record in data["train"] + data["validation"]:
        assert validate_record(task, record) == record
    assert data["train"][:5] != data["validation"][:5]


def test_defaults_give_thousands_of_records():
    data = load_task_data("classification", seq_len=128)
    assert len(data["train"]) >= 2000 and len(data["validation"]) >= 200
    mlm = load_task_data("mlm")
    assert len(mlm["train"]) > 800 and len(mlm["validation"]) > 80


def test_corpus_splits_do_not_share_text():
    data = load_task_data("mlm", seed=0)
    assert not {r["text"] for r in data["train"]} & {r["text"] for r in data["validation"]}
    assert all(len(s.split()) >= 4 and s[-1] in ".!?" for s in corpus.sentences())


# ---- ListOps -------------------------------------------------------------------------------------


def _evaluate(text: str) -> tuple[int, int]:
    """An independent ListOps evaluator on the token string: (value, nesting depth)."""
    stack: list[list] = []
    depth = 0
    result = None
    for token in text.split():
        if token.startswith("["):
            stack.append([token[1:]])
            depth = max(depth, len(stack))
            continue
        if token == "]":
            op, *args = stack.pop()
            ordered = sorted(args)
            mid = len(ordered) // 2
            value = {
                "MAX": ordered[-1],
                "MIN": ordered[0],
                "MED": ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2,
                "SM": sum(args) % 10,
            }[op]
        else:
            assert re.fullmatch(r"[0-9]", token), token
            value = int(token)
        if stack:
            stack[-1].append(value)
        else:
            result = value
    assert not stack and result is not None
    return result, depth


def test_listops_labels_equal_an_independent_evaluator():
    seq_len = 200
    records = load_task_data("classification", seed=1, seq_len=seq_len, num_train=600, num_validation=50)[
        "train"
    ]
    lengths, depths, labels, ops = [], [], set(), set()
    for record in records:
        value, depth = _evaluate(record["text"])
        assert record["label"] == str(value)
        lengths.append(len(record["text"].split()))
        depths.append(depth)
        labels.add(record["label"])
        ops.update(re.findall(r"\[(\w+)", record["text"]))
    assert labels == {str(d) for d in range(10)}
    assert ops == {"MAX", "MIN", "MED", "SM"}
    assert max(lengths) <= seq_len - 2
    assert max(lengths) > seq_len // 2  # long expressions fill a good part of the window
    assert sorted(lengths)[len(lengths) // 2] < 40  # most are short, so a tiny model learns
    assert 1 <= min(depths) and max(depths) <= 3


# ---- pass-key QA ---------------------------------------------------------------------------------


def test_passkey_answer_spans_point_at_the_key():
    seq_len = 128
    records = load_task_data("qa", seed=2, seq_len=seq_len, num_train=100, num_validation=10)["train"]
    depths = []
    for record in records:
        (text,), (start,) = record["answers"]["text"], record["answers"]["answer_start"]
        assert re.fullmatch(r"\d{5}", text)
        assert record["context"][start : start + len(text)] == text
        assert record["context"].count(f"The pass key is {text}. Remember it.") == 1
        assert record["question"] == "What is the pass key?"
        assert len(record["context"].split()) >= seq_len
        depths.append(start / len(record["context"]))
    assert min(depths) < 0.2 and max(depths) > 0.8


def test_passkey_contexts_scale_with_seq_len():
    short = load_task_data("qa", seq_len=64, num_train=20, num_validation=2)["train"]
    long = load_task_data("qa", seq_len=512, num_train=20, num_validation=2)["train"]
    mean = lambda rs: sum(len(r["context"].split()) for r in rs) / len(rs)  # noqa: E731
    assert mean(long) > 5 * mean(short)


# ---- token classification and multiple choice ----------------------------------------------------


def test_tagging_rule():
    tokens = ["In", "Python", "3.12", ",", "None", "is", "a", "Big", "Red", "value", "with", "X"]
    assert tagging.tag(tokens) == [
        "B-CAP",
        "I-CAP",
        "B-NUM",
        "O",
        "B-KW",
        "B-KW",
        "O",
        "B-CAP",
        "I-CAP",
        "O",
        "B-KW",
        "B-CAP",
    ]
    assert tagging.tokenize('Call "f(x)" 2 times.') == [
        "Call",
        '"',
        "f",
        "(",
        "x",
        ")",
        '"',
        "2",
        "times",
        ".",
    ]


def test_token_classification_records_follow_the_rule():
    records = load_task_data("token-classification", seed=0, seq_len=64, num_train=200, num_validation=5)[
        "train"
    ]
    seen = set()
    for record in records:
        assert record["tags"] == tagging.tag(record["tokens"])
        seen.update(record["tags"])
    assert seen == set(tagging.TAGS)


def test_multiple_choice_blank_and_choices():
    records = load_task_data("multiple-choice", seed=0, num_train=200, num_validation=5)["train"]
    sentences = set(corpus.sentences())
    positions = set()
    for record in records:
        choices, label = record["choices"], record["label"]
        assert len(choices) == mc.NUM_CHOICES == len(set(choices))
        assert record["context"].count(mc.BLANK) == 1
        assert record["context"].replace(mc.BLANK, choices[label]) in sentences
        context_words = set(re.findall(r"\w+", record["context"]))
        assert not (set(choices) - {choices[label]}) & context_words
        positions.add(label)
    assert positions == {0, 1, 2, 3}


# ---- multi-fact retrieval (builtin:facts) ----------------------------------------------------------


def test_facts_documents_hold_four_labelled_facts_and_ask_for_one():
    from yoso_core.data import facts

    data = load_task_data("qa", dataset="builtin:facts", seed=5, seq_len=512, num_train=60, num_validation=6)
    assert data == load_task_data(
        "qa", dataset="builtin:facts", seed=5, seq_len=512, num_train=60, num_validation=6
    )
    asked_depths = []
    for record in data["train"] + data["validation"]:
        assert validate_record("qa", record) == record
        planted = re.findall(r"The (\w+) code is (\d{4})\.", record["context"])
        keys, values = zip(*planted, strict=True)
        assert len(planted) == facts.FACTS and len(set(keys)) == 4 and len(set(values)) == 4
        assert set(keys) <= set(facts.KEYS)
        key = re.fullmatch(r"What is the (\w+) code\?", record["question"]).group(1)
        answer, start = record["answers"]["text"][0], record["answers"]["answer_start"][0]
        assert answer == dict(planted)[key]
        assert record["context"][start : start + 4] == answer
        assert record["context"][:start].endswith(f"The {key} code is ")
        asked_depths.append(start / len(record["context"]))
        assert 0.5 * 512 * facts.WORDS_PER_TOKEN < len(record["context"].split()) < 1.3 * 512
    # the asked fact sits anywhere: near the start and near the end both occur
    assert min(asked_depths) < 0.25 and max(asked_depths) > 0.75
    other = load_task_data("qa", dataset="builtin:facts", seed=6, seq_len=512, num_train=60, num_validation=6)
    assert other["train"] != data["train"]


def test_facts_fit_one_window_of_seq_len_tokens():
    from yoso_core.data import build_tokenizer, encode, training_texts

    data = load_task_data(
        "qa", dataset="builtin:facts", seed=0, seq_len=1024, num_train=60, num_validation=10
    )
    tokenizer = build_tokenizer(training_texts("qa", data["train"]), vocab_size=4000, max_length=1024)
    lengths = [len(tokenizer(r["question"], r["context"])["input_ids"]) for r in data["validation"]]
    assert 0.6 * 1024 < min(lengths) and max(lengths) <= 1024, lengths
    assert len(encode("qa", data["validation"], tokenizer, seq_len=1024)) <= 12


def test_unknown_builtin_set_names_the_choices():
    from yoso_core.data import DataError

    with pytest.raises(DataError, match="builtin:passkey or builtin:facts"):
        load_task_data("qa", dataset="builtin:nope", num_train=1, num_validation=1)
    with pytest.raises(DataError, match="no built-in set 'facts'"):
        load_task_data("classification", dataset="builtin:facts", num_train=1, num_validation=1)


def test_listops_reaches_the_long_range_arena_length_at_2048():
    """With --seq-len 2048 the long expressions reach LRA's 2,000 tokens and still fit the window."""
    from yoso_core.data import build_tokenizer, encode, listops, training_texts

    data = load_task_data("classification", seed=0, seq_len=2048, num_train=400, num_validation=10)
    costs = [listops.cost(r["text"].split()) for r in data["train"]]
    assert max(costs) >= 2000 and max(costs) <= 2046
    longest = sorted(data["train"], key=lambda r: listops.cost(r["text"].split()))[-3:]
    tokenizer = build_tokenizer(
        training_texts("classification", data["train"]), vocab_size=1000, max_length=2048
    )
    features = encode(
        "classification", longest, tokenizer, seq_len=2048, label2id={str(d): d for d in range(10)}
    )
    lengths = [len(f["input_ids"]) for f in features]
    assert max(lengths) >= 2000 and max(lengths) <= 2048, lengths
    # the documented sub-word count (+ <s> and </s>): nothing was cut off
    assert lengths == [listops.cost(r["text"].split()) + 2 for r in longest]
