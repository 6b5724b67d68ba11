"""Tokenizer, features and batches: special ids, QA windows, word alignment, padding, MLM masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yoso_core.data import (
    DataError,
    build_tokenizer,
    collate,
    decode,
    encode,
    load_task_data,
    load_tokenizer,
    training_texts,
)


@pytest.fixture(scope="module")
def tokenizer():
    texts = training_texts("mlm", load_task_data("mlm")["train"])
    return build_tokenizer(texts, vocab_size=1200, max_length=256)


def test_special_tokens_and_pair_layout(tokenizer):
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert tokenizer.convert_tokens_to_ids(specials) == [0, 1, 2, 3, 4]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id) == (0, 2, 4)
    assert tokenizer.model_max_length == 256
    ids = tokenizer("one value", "two")["input_ids"]
    a = tokenizer("one value", add_special_tokens=False)["input_ids"]
    b = tokenizer("two", add_special_tokens=False)["input_ids"]
    assert ids == [0, *a, 2, 2, *b, 2]
    # <mask> takes the space before it, so the words around it keep their usual tokens
    masked = tokenizer("the <mask> value")["input_ids"]
    assert masked == [
        0,
        *tokenizer("the", add_special_tokens=False)["input_ids"],
        4,
        *tokenizer(" value", add_special_tokens=False)["input_ids"],
        2,
    ]


def test_saved_tokenizer_loads_with_the_callers_max_length(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path), max_length=1000)
    assert loaded.model_max_length == 1000
    text = "The value of x is 42."
    assert loaded(text, "pair")["input_ids"] == tokenizer(text, "pair")["input_ids"]
    assert loaded.mask_token_id == 4 and loaded.pad_token_id == 1


def test_words_tokenize_like_running_text(tokenizer):
    words = ["Lists", "are", "mutable", "sequences", "42"]
    by_word = tokenizer(words, is_split_into_words=True)
    assert by_word["input_ids"] == tokenizer(" ".join(words))["input_ids"]
    assert by_word.word_ids()[0] is None and by_word.word_ids()[-1] is None


def test_training_texts_cover_every_text_field():
    records = [{"question": "q?", "context": "ctx", "answers": {"text": ["c"], "answer_start": [0]}}]
    assert list(training_texts("qa", records)) == ["q?", "ctx"]
    records = [{"context": "c", "choices": ["x", "y"], "label": 0}]
    assert list(training_texts("multiple-choice", records)) == ["c", "x", "y"]
    records = [{"tokens": ["A", "b"], "tags": ["B-CAP", "O"]}, {"text": "t", "text_pair": "p", "label": "1"}]
    assert list(training_texts("token-classification", records[:1])) == ["A b"]
    assert list(training_texts("classification", records[1:])) == ["t", "p"]


# ---- QA windows ----------------------------------------------------------------------------------


def test_qa_windows_cover_the_answer_and_map_back_to_char_offsets(tokenizer):
    seq_len, stride = 64, 16
    records = load_task_data("qa", seed=5, seq_len=seq_len * 2, num_train=6, num_validation=1)["train"]
    features = encode("qa", records, tokenizer, seq_len=seq_len, stride=stride)
    outputs = []
    for i, record in enumerate(records):
        windows = [f for f in features if f["example_index"] == i]
        assert len(windows) > 2
        answer = record["answers"]["text"][0]
        start_char = record["answers"]["answer_start"][0]
        hits = [f for f in windows if f["start_positions"] > 0]
        assert hits, "some window holds the answer"
        for f in windows:
            assert len(f["input_ids"]) <= seq_len
            assert f["offset_mapping"][0] is None and f["input_ids"][0] == 0
            if f["start_positions"] == 0:
                assert f["end_positions"] == 0
                continue
            s, e = f["start_positions"], f["end_positions"]
            assert (f["offset_mapping"][s][0], f["offset_mapping"][e][1]) == (
                start_char,
                start_char + len(answer),
            )
        for a, b in zip(windows, windows[1:]):  # consecutive windows share `stride` context tokens
            ctx_a = [t for t, o in zip(a["input_ids"], a["offset_mapping"]) if o is not None]
            ctx_b = [t for t, o in zip(b["input_ids"], b["offset_mapping"]) if o is not None]
            assert ctx_a[-stride:] == ctx_b[:stride]
    # decode: logits that point at the answer tokens of one window give the exact span back
    for f in features:
        n = len(f["input_ids"])
        start, end = torch.zeros(n), torch.zeros(n)
        if f["start_positions"]:
            start[f["start_positions"]], end[f["end_positions"]] = 20.0, 20.0
        outputs.append({"start_logits": start.numpy(), "end_logits": end.numpy()})
    for record, answer in zip(records, decode("qa", records, features, outputs, tokenizer)):
        start_char = record["answers"]["answer_start"][0]
        assert answer["answer"] == record["answers"]["text"][0]
        assert (answer["start"], answer["end"]) == (start_char, start_char + len(answer["answer"]))
        assert 0.9 < answer["score"] <= 1.0


def test_qa_question_too_long_for_the_window(tokenizer):
    record = {"question": "why " * 60, "context": "short context"}
    with pytest.raises(DataError, match="record 1: the question is too long"):
        encode("qa", [record], tokenizer, seq_len=64)


# ---- other tasks ---------------------------------------------------------------------------------


def test_token_labels_sit_on_first_sub_tokens(tokenizer):
    records = [
        {
            "tokens": ["Dictionaries", "map", "keys", "3", "supercalifragilistic"],
            "tags": ["B-CAP", "O", "O", "B-NUM", "O"],
        }
    ]
    label2id = {"O": 0, "B-CAP": 1, "B-NUM": 2}
    (feature,) = encode("token-classification", records, tokenizer, seq_len=64, label2id=label2id)
    word_ids, labels = feature["word_ids"], feature["labels"]
    assert word_ids[0] == -1 and word_ids[-1] == -1 and labels[0] == labels[-1] == -100
    firsts = [k for k, w in enumerate(word_ids) if w >= 0 and word_ids[k - 1] != w]
    assert [labels[k] for k in firsts] == [1, 0, 0, 2, 0]
    assert all(labels[k] == -100 for k in range(len(labels)) if k not in firsts)
    assert len(word_ids) > 7  # the long word is several sub-tokens
    with pytest.raises(DataError, match="record 1: tag 'B-NUM' is not one of the model's tags"):
        encode("token-classification", records, tokenizer, seq_len=64, label2id={"O": 0, "B-CAP": 1})


def test_classification_and_multiple_choice_features(tokenizer):
    records = [{"text": "[MAX 1 2 ]", "label": "2"}, {"text": "a", "text_pair": "b", "id": 3}]
    features = encode("classification", records, tokenizer, seq_len=32, label2id={"1": 0, "2": 1})
    assert features[0]["labels"] == 1 and "labels" not in features[1]
    assert features[1]["input_ids"].count(2) == 3  # <s> a </s></s> b </s>
    assert [f["example_index"] for f in features] == [0, 1]
    with pytest.raises(DataError, match="label '7' is not one of the model's labels"):
        encode("classification", [{"text": "x", "label": "7"}], tokenizer, seq_len=32, label2id={"1": 0})
    mc = [{"context": "pick the word", "choices": ["a", "bb", "ccc"], "label": 1}]
    (feature,) = encode("multiple-choice", mc, tokenizer, seq_len=32)
    assert len(feature["input_ids"]) == 3 and feature["labels"] == 1
    assert all(row[0] == 0 and row[-1] == 2 for row in feature["input_ids"])


def test_mlm_chunks_concatenate_the_texts(tokenizer):
    records = load_task_data("mlm", num_train=30, num_validation=1)["train"]
    features = encode("mlm", records, tokenizer, seq_len=48)
    assert all(
        len(f["input_ids"]) <= 48 and f["input_ids"][0] == 0 and f["input_ids"][-1] == 2 for f in features
    )
    assert all(len(f["input_ids"]) == 48 for f in features[:-1])
    stream = [t for f in features for t in f["input_ids"][1:-1]]
    expected = [t for r in records for t in tokenizer(r["text"], add_special_tokens=False)["input_ids"] + [2]]
    assert stream == expected
    indices = [f["example_index"] for f in features]
    assert indices == sorted(indices) and indices[0] == 0
    # prediction input (with <mask>) keeps one feature per record
    single = encode("mlm", [{"text": "a <mask> b"}, {"text": "c"}], tokenizer, seq_len=48)
    assert [f["example_index"] for f in single] == [0, 1] and 4 in single[0]["input_ids"]


# ---- collate -------------------------------------------------------------------------------------

MODEL_KEYS = {"input_ids", "attention_mask", "labels", "start_positions", "end_positions"}


def test_collate_pads_right_and_keeps_only_model_keys(tokenizer):
    records = [{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", "b", "C"], "tags": ["O", "O", "B-CAP"]}]
    features = encode("token-classification", records, tokenizer, seq_len=32, label2id={"O": 0, "B-CAP": 1})
    batch = collate("token-classification", tokenizer)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    n0, n1 = len(features[0]["input_ids"]), len(features[1]["input_ids"])
    assert batch["input_ids"].shape == (2, n1) and n0 < n1
    assert batch["input_ids"][0, n0:].eq(1).all() and batch["attention_mask"][0, n0:].eq(0).all()
    assert batch["labels"][0, n0:].eq(-100).all() and batch["attention_mask"][1].eq(1).all()
    assert batch["input_ids"][0, :n0].tolist() == features[0]["input_ids"]

    qa = encode(
        "qa", load_task_data("qa", seq_len=40, num_train=2, num_validation=1)["train"], tokenizer, seq_len=64
    )
    batch = collate("qa", tokenizer)(qa[:3])
    assert set(batch) == {"input_ids", "attention_mask", "start_positions", "end_positions"}
    assert batch["start_positions"].tolist() == [f["start_positions"] for f in qa[:3]]

    mc = load_task_data("multiple-choice", num_train=3, num_validation=1)["train"]
    batch = collate("multiple-choice", tokenizer)(encode("multiple-choice", mc, tokenizer, seq_len=64))
    assert batch["input_ids"].shape[:2] == (3, 4) and batch["labels"].tolist() == [r["label"] for r in mc]
    assert set(batch) <= MODEL_KEYS


def test_multiple_choice_batches_of_other_choice_counts_are_padded_only_for_prediction(tokenizer):
    records = [
        {"context": "pick one", "choices": ["a", "b"]},
        {"context": "pick one of more", "choices": ["a", "b c", "d", "e"]},
    ]
    features = encode("multiple-choice", records, tokenizer, seq_len=64)
    with pytest.raises(ValueError, match=r"same number of choices, got \[2, 4\]"):
        collate("multiple-choice", tokenizer)(features)
    batch = collate("multiple-choice", tokenizer, mask=False, pad_choices=True)(features)
    width = max(len(row) for f in features for row in f["input_ids"])
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 4, width)
    assert batch["input_ids"][0, 2:].eq(tokenizer.pad_token_id).all()
    assert batch["attention_mask"][0, 2:].eq(0).all()
    for i, feature in enumerate(features):
        for j, row in enumerate(feature["input_ids"]):
            assert batch["input_ids"][i, j, : len(row)].tolist() == row
            assert batch["attention_mask"][i, j].tolist() == [1] * len(row) + [0] * (width - len(row))


def test_mlm_masking_statistics(tokenizer):
    records = load_task_data("mlm", num_train=200, num_validation=1)["train"]
    features = encode("mlm", records, tokenizer, seq_len=128)[:64]
    features[-1] = {"input_ids": features[-1]["input_ids"][:50], "example_index": 0}  # padding in the batch
    fn = collate("mlm", tokenizer, generator=torch.Generator().manual_seed(0))
    batch = fn(features)
    original = collate("mlm", tokenizer, mask=False)(features)["input_ids"]
    ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
    special = torch.isin(original, torch.tensor([0, 1, 2, 3, 4]))
    chosen = labels != -100
    maskable = int((~special & attention.bool()).sum())
    assert maskable > 6000
    rate = int(chosen.sum()) / maskable
    assert abs(rate - 0.15) < 0.02  # 5 standard deviations of a binomial with n > 6000
    assert not (chosen & special).any() and not (chosen & ~attention.bool()).any()
    assert torch.equal(labels[chosen], original[chosen])
    assert torch.equal(ids[~chosen], original[~chosen])
    as_mask = (ids[chosen] == 4).float().mean().item()
    unchanged = (ids[chosen] == original[chosen]).float().mean().item()
    assert abs(as_mask - 0.8) < 0.05 and abs(unchanged - 0.1) < 0.05
    again = collate("mlm", tokenizer, generator=torch.Generator().manual_seed(0))(features)
    other = collate("mlm", tokenizer, generator=torch.Generator().manual_seed(1))(features)
    assert torch.equal(again["input_ids"], ids) and torch.equal(again["labels"], labels)
    assert not torch.equal(other["labels"], labels)


def test_mlm_collate_always_masks_something_and_leaves_prediction_input_alone(tokenizer):
    short = [{"input_ids": [0, 300, 2], "example_index": 0}]
    batch = collate("mlm", tokenizer, mlm_probability=0.0, generator=torch.Generator().manual_seed(0))(short)
    assert batch["labels"].tolist() == [[-100, 300, -100]]
    predict = encode("mlm", [{"text": "a <mask> b"}], tokenizer, seq_len=32)
    batch = collate("mlm", tokenizer)(predict)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"][0].tolist() == predict[0]["input_ids"]


def test_qa_without_an_answer_points_every_window_at_the_start(tokenizer):
    context = " ".join(["Lists are mutable sequences."] * 30)
    records = [
        {"question": "What is the pass key?", "context": context, "answers": {"text": [], "answer_start": []}}
    ]
    features = encode("qa", records, tokenizer, seq_len=48, stride=8)
    assert len(features) > 2
    assert all(f["start_positions"] == f["end_positions"] == 0 for f in features)
    unlabelled = encode("qa", [{"question": "q", "context": context}], tokenizer, seq_len=48, stride=8)
    assert all("start_positions" not in f for f in unlabelled)


# ---- strided windows over long inputs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "body", "stride"), [(5, 10, 2), (10, 10, 2), (11, 10, 2), (803, 62, 16), (100, 9, 0)]
)
def test_windows_cover_every_token_and_own_each_once(n, body, stride):
    from yoso_core.data.encoding import windows

    spans = windows(n, body, stride)
    assert spans[0][0] == 0 and spans[-1][1] == n
    owned = [t for _, _, a, b in spans for t in range(a, b)]
    assert owned == list(range(n))  # each token owned by exactly one window, in order
    for (start, end, a, b), following in zip(spans, [*spans[1:], None]):
        assert end - start == min(body, n) and start <= a <= b <= end
        if following is not None:
            assert end - following[0] >= stride  # neighbours overlap by at least the stride
            # an owned token has at least as much context here as in the next window
            assert all(
                min(t - start, end - 1 - t) >= min(t - following[0], following[1] - 1 - t)
                for t in range(a, b)
            )
    with pytest.raises(ValueError, match="stride"):
        windows(20, 8, 8)


def test_long_token_classification_input_is_tagged_throughout(tokenizer):
    words = [("Lists", "B-CAP"), ("are", "O"), ("42", "B-NUM"), ("supercalifragilistic", "O")] * 200
    record = {"tokens": [w for w, _ in words], "tags": [t for _, t in words]}
    label2id = {"O": 0, "B-CAP": 1, "B-NUM": 2}
    features = encode("token-classification", [record], tokenizer, seq_len=64, label2id=label2id)
    assert len(features) > 10 and all(len(f["input_ids"]) <= 64 for f in features)
    # every word carries its tag exactly once, on its first sub-token
    tagged = [
        (f["word_ids"][k], f["labels"][k])
        for f in features
        for k in range(len(f["labels"]))
        if f["labels"][k] != -100
    ]
    assert tagged == [(i, label2id[t]) for i, (_, t) in enumerate(words)]
    # logits that say each word's true tag at every one of its sub-tokens decode to every tag
    outputs = []
    for f in features:
        logits = np.zeros((len(f["input_ids"]), 3))
        for k, w in enumerate(f["word_ids"]):
            logits[k, label2id[words[w][1]] if w >= 0 else 0] = 5.0
        outputs.append({"logits": logits})
    (out,) = decode(
        "token-classification",
        [record],
        features,
        outputs,
        tokenizer,
        id2label={v: k for k, v in label2id.items()},
    )
    assert out["tags"] == record["tags"]
    assert len(out["entities"]) == 400


def test_long_fill_mask_input_answers_every_mask(tokenizer):
    words = ("the value of the list is " * 150).split()
    for k in (3, 400, len(words) - 2):
        words[k] = "<mask>"
    record = {"text": " ".join(words)}
    features = encode("mlm", [record], tokenizer, seq_len=64)
    assert all(
        len(f["input_ids"]) <= 64 and f["input_ids"][0] == 0 and f["input_ids"][-1] == 2 for f in features
    )
    assert sorted(m for f in features for _, m in f["masks"]) == [0, 1, 2]
    assert all(f["input_ids"][k] == tokenizer.mask_token_id for f in features for k, _ in f["masks"])
    target = tokenizer(" value", add_special_tokens=False)["input_ids"][0]
    outputs = []
    for f in features:
        logits = np.zeros((len(f["input_ids"]), len(tokenizer)))
        logits[:, target] = 10.0
        outputs.append({"logits": logits})
    (out,) = decode("mlm", [record], features, outputs, tokenizer, top_k=2)
    assert len(out["fills"]) == 3 and all(options[0]["token"] == "value" for options in out["fills"])
    last = out["fills"][2][0]["sequence"]
    assert last.count("<mask>") == 2 and last.endswith("value is")
