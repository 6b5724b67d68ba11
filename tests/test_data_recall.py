"""The built-in recall set (MQAR): deterministic, labelled only at queries, one window of --seq-len."""

from __future__ import annotations

import pytest

from yoso_core.data import (
    DataError,
    build_tokenizer,
    encode,
    label_names,
    load_task_data,
    recall,
    training_texts,
)
from yoso_core.data.encoding import IGNORE
from yoso_core.data.schema import RecordError, validate_record


def _load(seq_len=256, seed=0, dataset="builtin:recall", num_train=30, num_validation=10):
    return load_task_data(
        "token-classification",
        dataset=dataset,
        seed=seed,
        seq_len=seq_len,
        num_train=num_train,
        num_validation=num_validation,
    )


def test_same_seed_same_records_new_seed_new_records_and_held_out_ones_are_new():
    first = _load(seed=1)
    assert first == _load(seed=1)
    assert first["train"] != _load(seed=2)["train"]
    train = {tuple(r["tokens"]) for r in first["train"]}
    assert not train & {tuple(r["tokens"]) for r in first["validation"]}


@pytest.mark.parametrize("seq_len", [64, 512, 2048])
def test_every_query_is_tagged_with_the_value_of_its_key_and_nothing_else_is_tagged(seq_len):
    shape = recall.recall_shape(seq_len)
    for record in _load(seq_len=seq_len, num_train=4, num_validation=2)["train"]:
        assert validate_record("token-classification", record) == record
        tokens, tags = record["tokens"], record["tags"]
        assert len(tokens) == len(tags) == seq_len - 2
        pairs = dict(zip(tokens[0 : 2 * shape.pairs : 2], tokens[1 : 2 * shape.pairs : 2]))
        assert len(pairs) == shape.pairs  # distinct keys
        assert all(t is None for t in tags[: 2 * shape.pairs])
        queries = [(i, t) for i, t in enumerate(tokens) if i >= 2 * shape.pairs and t != recall.FILLER]
        assert sorted(t for _, t in queries) == sorted(pairs)  # every key asked once
        assert {i for i, _ in queries} == {i for i, tag in enumerate(tags) if tag is not None}
        assert all(tags[i] == pairs[key] for i, key in queries)


def test_pairs_and_key_to_query_distance_grow_with_the_length():
    def mean_distance(seq_len):
        record = _load(seq_len=seq_len, num_train=3, num_validation=1)["train"][0]
        first = {t: i for i, t in reversed(list(enumerate(record["tokens"])))}
        gaps = [i - first[t] for i, t in enumerate(record["tokens"]) if record["tags"][i] is not None]
        return sum(gaps) / len(gaps)

    assert recall.recall_shape(2048).pairs == 4 * recall.recall_shape(512).pairs == 256
    assert mean_distance(2048) > 3 * mean_distance(512)


def test_each_word_is_one_token_so_a_record_fills_exactly_one_window():
    seq_len = 512
    data = _load(seq_len=seq_len, num_train=40, num_validation=5)
    tokenizer = build_tokenizer(
        training_texts("token-classification", data["train"]), vocab_size=2000, max_length=seq_len
    )
    tags = label_names("token-classification", data["train"] + data["validation"])
    features = encode(
        "token-classification",
        data["validation"],
        tokenizer,
        seq_len=seq_len,
        label2id={t: i for i, t in enumerate(tags)},
    )
    assert len(features) == len(data["validation"])  # no record needs a second window
    for feature, record in zip(features, data["validation"]):
        assert len(feature["input_ids"]) == seq_len
        labelled = [k for k, label in enumerate(feature["labels"]) if label != IGNORE]
        # the label sits on the query word (shifted by <s>), nowhere else
        assert labelled == [i + 1 for i, tag in enumerate(record["tags"]) if tag is not None]
        assert all(tags[feature["labels"][k]] == record["tags"][k - 1] for k in labelled)


def test_sizes_are_set_after_the_name_and_chance_is_one_over_values():
    data = _load(seq_len=128, dataset="builtin:recall:pairs=5,keys=9,values=3", num_train=20)
    for record in data["train"]:
        values = {t for t in record["tags"] if t is not None}
        assert len([t for t in record["tags"] if t is not None]) == 5
        assert values <= {recall.word("v", i, 3) for i in range(3)}
        assert {t for t in record["tokens"][:10:2]} <= {recall.word("k", i, 9) for i in range(9)}
    assert recall.recall_shape(128, values=3).chance == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "dataset, message",
    [
        ("builtin:recall:pairs=50", "need 150 words, but --seq-len 128 holds 126; use pairs=42"),
        ("builtin:recall:pairs=10,keys=4", "keys >= 10"),
        ("builtin:recall:colours=3", "unknown field 'colours'"),
        ("builtin:recall:pairs=x", "expected NAME:field=integer"),
        ("builtin:tagging:pairs=3", "takes no parameters"),
    ],
)
def test_bad_sizes_are_refused_by_name(dataset, message):
    with pytest.raises(DataError, match=message):
        _load(seq_len=128, dataset=dataset)


def test_a_null_tag_is_a_word_without_a_label_and_other_non_strings_are_refused():
    record = {"tokens": ["a", "b"], "tags": [None, "B-X"]}
    assert validate_record("token-classification", record) == record
    assert label_names("token-classification", [record]) == ["O", "B-X"]
    with pytest.raises(RecordError, match="a string or null, got int"):
        validate_record("token-classification", {"tokens": ["a"], "tags": [3]})
