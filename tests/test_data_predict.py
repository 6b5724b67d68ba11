"""``yoso predict`` input lines and output decoding."""

from __future__ import annotations

import numpy as np
import pytest

from yoso_core.data import DataError, build_tokenizer, decode, encode, load_task_data, parse_predict_line
from yoso_core.data.decoding import _entities


@pytest.fixture(scope="module")
def tokenizer():
    texts = [r["text"] for r in load_task_data("mlm", num_train=300, num_validation=1)["train"]]
    return build_tokenizer(texts, vocab_size=800, max_length=128)


def test_parse_json_and_plain_lines():
    assert parse_predict_line("classification", "just some text\n", 1) == {"text": "just some text"}
    assert parse_predict_line("mlm", "a <mask> b", 1) == {"text": "a <mask> b"}
    assert parse_predict_line("classification", '{"text": "a", "text_pair": "b", "id": 9}', 4) == {
        "id": 9,
        "text": "a",
        "text_pair": "b",
    }
    assert parse_predict_line("token-classification", '{"text": "New  York city"}', 1) == {
        "tokens": ["New", "York", "city"]
    }
    assert parse_predict_line("token-classification", '{"tokens": ["a"], "id": "x"}', 1) == {
        "id": "x",
        "tokens": ["a"],
    }
    assert parse_predict_line("qa", '{"question": "q", "context": "c"}', 1) == {
        "question": "q",
        "context": "c",
    }
    line = '{"context": "c", "choices": ["a", "b"]}'
    assert parse_predict_line("multiple-choice", line, 1) == {"context": "c", "choices": ["a", "b"]}


@pytest.mark.parametrize(
    ("task", "line", "problem"),
    [
        ("qa", '{"question": "q", "context": ', "line 7: not valid JSON"),
        ("qa", "plain text", "line 7: not a JSON object"),
        ("qa", '{"question": "q"}', 'line 7: missing column "context"'),
        (
            "multiple-choice",
            '{"context": "c", "choices": ["a"]}',
            'line 7: column "choices" needs at least 2',
        ),
        ("token-classification", '{"tokens": []}', 'line 7: column "tokens" is empty'),
        ("classification", '{"text": 3}', 'line 7: column "text" must be a string, got int'),
        ("classification", "   ", "line 7: empty line"),
        ("mlm", '{"text": "a", "id": [1]}', 'line 7: column "id" must be a string or an integer'),
    ],
)
def test_bad_lines_name_the_line_and_the_format(task, line, problem):
    with pytest.raises(DataError) as info:
        parse_predict_line(task, line, 7)
    assert problem in str(info.value)
    assert "expected {" in str(info.value)


def test_source_prefixes_the_message():
    with pytest.raises(DataError, match=r"^in\.jsonl: line 2: not valid JSON"):
        parse_predict_line("qa", "{", 2, source="in.jsonl")


def test_entities_from_bio_tags():
    tokens = ["New", "York", "is", "big", "in", "3", "ways", "X"]
    tags = ["B-CAP", "I-CAP", "O", "I-KW", "B-KW", "B-NUM", "O", "B-CAP"]
    assert _entities(tokens, tags) == [
        {"type": "CAP", "start": 0, "end": 2, "text": "New York"},
        {"type": "KW", "start": 3, "end": 4, "text": "big"},
        {"type": "KW", "start": 4, "end": 5, "text": "in"},
        {"type": "NUM", "start": 5, "end": 6, "text": "3"},
        {"type": "CAP", "start": 7, "end": 8, "text": "X"},
    ]


def _logits_for(features, make):
    return [make(f) for f in features]


def test_decode_classification_and_multiple_choice(tokenizer):
    records = [{"text": "a", "id": "r1"}, {"text": "b"}]
    features = encode("classification", records, tokenizer, seq_len=16)
    outputs = [{"logits": np.array([0.0, 3.0, 0.0])}, {"logits": np.array([5.0, 0.0, 0.0])}]
    out = decode("classification", records, features, outputs, tokenizer, id2label={0: "x", 1: "y", 2: "z"})
    assert [o["label"] for o in out] == ["y", "x"] and out[0]["id"] == "r1" and "id" not in out[1]
    assert out[0]["score"] == pytest.approx(np.exp(3) / (np.exp(3) + 2))
    string_keys = decode(
        "classification", records, features, outputs, tokenizer, id2label={"0": "x", "1": "y"}
    )
    assert [o["label"] for o in string_keys] == ["y", "x"]
    records = [{"context": "c", "choices": ["a", "b", "c"], "id": 5}]
    features = encode("multiple-choice", records, tokenizer, seq_len=16)
    (out,) = decode("multiple-choice", records, features, [{"logits": np.array([0.0, 0.0, 2.0])}], tokenizer)
    assert out["choice"] == 2 and out["id"] == 5
    assert len(out["scores"]) == 3 and sum(out["scores"]) == pytest.approx(1.0)


def test_decode_token_classification(tokenizer):
    records = [{"tokens": ["Guido", "van", "Rossum", "wrote", "3", "things"]}]
    (feature,) = encode("token-classification", records, tokenizer, seq_len=32)
    want = [1, 0, 1, 0, 2, 0]  # by word: B-CAP O B-CAP O B-NUM O
    logits = np.zeros((len(feature["input_ids"]), 3))
    for k, w in enumerate(feature["word_ids"]):
        logits[k, want[w] if w >= 0 else 0] = 5.0
    (out,) = decode(
        "token-classification",
        records,
        [feature],
        [{"logits": logits}],
        tokenizer,
        id2label={0: "O", 1: "B-CAP", 2: "B-NUM"},
    )
    assert out["tokens"] == records[0]["tokens"]
    assert out["tags"] == ["B-CAP", "O", "B-CAP", "O", "B-NUM", "O"]
    assert [(e["type"], e["start"], e["end"], e["text"]) for e in out["entities"]] == [
        ("CAP", 0, 1, "Guido"),
        ("CAP", 2, 3, "Rossum"),
        ("NUM", 4, 5, "3"),
    ]


def test_decode_fill_mask(tokenizer):
    records = [{"text": "The <mask> statement and the <mask>.", "id": 1}, {"text": "no mask here"}]
    features = encode("mlm", records, tokenizer, seq_len=32)
    target = tokenizer(" value", add_special_tokens=False)["input_ids"]
    assert len(target) == 1
    outputs = []
    for f in features:
        logits = np.zeros((len(f["input_ids"]), len(tokenizer)))
        logits[:, target[0]] = 10.0
        outputs.append({"logits": logits})
    first, second = decode("mlm", records, features, outputs, tokenizer, top_k=3)
    assert first["id"] == 1 and second == {"fills": []}
    assert len(first["fills"]) == 2 and all(len(options) == 3 for options in first["fills"])
    best = first["fills"][0][0]
    assert best["token"] == "value" and best["token_id"] == target[0] and best["score"] > 0.5
    assert best["sequence"] == "The value statement and the <mask>."
    assert first["fills"][1][0]["sequence"] == "The <mask> statement and the value."
    scores = [o["score"] for o in first["fills"][0]]
    assert scores == sorted(scores, reverse=True)


def test_decode_needs_one_output_per_feature(tokenizer):
    records = [{"text": "a"}]
    features = encode("classification", records, tokenizer, seq_len=16)
    with pytest.raises(ValueError, match="one output per feature"):
        decode("classification", records, features, [], tokenizer)
