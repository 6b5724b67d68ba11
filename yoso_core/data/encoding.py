"""Records to features: token ids per task, QA windows, word-label alignment, MLM chunks.

A feature is a dict of python lists of ints (the model inputs and labels) plus bookkeeping that
``decode`` needs: ``example_index`` (its record), ``word_ids`` (token classification) and
``offset_mapping`` (QA). ``collate`` turns a list of features into padded tensors.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from .schema import DataError, check_task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE = -100  # label of positions the loss skips (specials, padding, non-first sub-tokens)
_BATCH = 1000  # texts per tokenizer call when packing mlm text


def _label_id(label2id: dict[str, int] | None, label: str, index: int, what: str) -> int:
    if label2id is None:
        raise ValueError(f"encoding {what}s needs label2id (see label_names)")
    if label not in label2id:
        known = ", ".join(map(str, label2id))
        raise DataError(
            f"record {index + 1}: {what} {label!r} is not one of the model's {what}s ({known}); "
            f"use the model's {what}s or train a new model"
        )
    return label2id[label]


def _mlm(records: list[dict], tokenizer, seq_len: int, pack: bool | None) -> list[dict]:
    """Texts joined by ``</s>`` and cut into chunks of ``seq_len`` (``<s> ... </s>``); with
    ``pack=False`` (the default when a text holds ``<mask>``: prediction input) one per record."""
    mask = tokenizer.mask_token
    if pack is None:
        pack = not (mask and any(mask in r["text"] for r in records))
    if not pack:
        return [
            {
                "input_ids": tokenizer(r["text"], truncation=True, max_length=seq_len)["input_ids"],
                "example_index": i,
            }
            for i, r in enumerate(records)
        ]
    bos = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    eos = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if bos is None or eos is None:
        raise ValueError("masked-LM chunks need a tokenizer with cls/bos and sep/eos tokens")
    body = seq_len - 2  # room for <s> and </s>
    stream: list[int] = []
    starts = []  # starts[i]: where record i begins in the stream
    for first in range(0, len(records), _BATCH):
        texts = [r["text"] for r in records[first : first + _BATCH]]
        for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
            starts.append(len(stream))
            stream += ids
            stream.append(eos)
    return [
        {"input_ids": [bos, *stream[k : k + body], eos], "example_index": bisect.bisect_right(starts, k) - 1}
        for k in range(0, len(stream), body)
    ]


def _classification(records, tokenizer, seq_len, label2id) -> list[dict]:
    features = []
    for i, record in enumerate(records):
        enc = tokenizer(record["text"], record.get("text_pair"), truncation=True, max_length=seq_len)
        feature = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "example_index": i}
        if "label" in record:
            feature["labels"] = _label_id(label2id, str(record["label"]), i, "label")
        features.append(feature)
    return features


def _token_classification(records, tokenizer, seq_len, label2id) -> list[dict]:
    features = []
    for i, record in enumerate(records):
        enc = tokenizer(record["tokens"], is_split_into_words=True, truncation=True, max_length=seq_len)
        word_ids = [-1 if w is None else w for w in enc.word_ids()]
        feature = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "word_ids": word_ids,
            "example_index": i,
        }
        if "tags" in record:
            tag_ids = [_label_id(label2id, tag, i, "tag") for tag in record["tags"]]
            # Only the first sub-token of each word carries the word's tag.
            feature["labels"] = [
                tag_ids[w] if w >= 0 and (k == 0 or word_ids[k - 1] != w) else IGNORE
                for k, w in enumerate(word_ids)
            ]
        features.append(feature)
    return features


def _qa(records, tokenizer, seq_len, stride) -> list[dict]:
    stride = seq_len // 4 if stride is None else stride
    features = []
    for i, record in enumerate(records):
        question = record["question"].strip()
        room = seq_len - len(tokenizer(question)["input_ids"]) - 2  # context tokens per window
        if room <= stride:
            raise DataError(
                f"record {i + 1}: the question is too long for windows of {seq_len} tokens with a "
                f"stride of {stride}; shorten the question or raise the sequence length"
            )
        enc = tokenizer(
            question,
            record["context"],
            truncation="only_second",
            max_length=seq_len,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        answer = None  # char span of the first answer; (0, 0) when the record says there is none
        if "answers" in record:
            answer = (0, 0)
            if record["answers"]["text"]:
                start_char = record["answers"]["answer_start"][0]
                answer = (start_char, start_char + len(record["answers"]["text"][0]))
        for w in range(len(enc["input_ids"])):
            sequence_ids = enc.sequence_ids(w)
            offsets = [list(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], sequence_ids)]
            feature: dict[str, Any] = {
                "input_ids": enc["input_ids"][w],
                "attention_mask": enc["attention_mask"][w],
                "offset_mapping": offsets,
                "example_index": i,
            }
            if answer is not None:
                feature["start_positions"], feature["end_positions"] = _answer_tokens(offsets, *answer)
            features.append(feature)
    return features


def _answer_tokens(offsets: list, start_char: int, end_char: int) -> tuple[int, int]:
    """First and last token of the answer span in this window, or (0, 0) (the ``<s>`` token) when
    the window does not hold the whole answer."""
    context = [(k, o) for k, o in enumerate(offsets) if o is not None]
    if end_char <= start_char or not context or context[0][1][0] > start_char or context[-1][1][1] < end_char:
        return 0, 0
    inside = [k for k, (a, b) in context if a < end_char and b > start_char and b > a]
    return (inside[0], inside[-1]) if inside else (0, 0)


def _multiple_choice(records, tokenizer, seq_len) -> list[dict]:
    features = []
    for i, record in enumerate(records):
        enc = tokenizer(
            [record["context"]] * len(record["choices"]),
            record["choices"],
            truncation=True,
            max_length=seq_len,
        )
        feature = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "example_index": i}
        if "label" in record:
            feature["labels"] = record["label"]
        features.append(feature)
    return features


def encode(
    task: str,
    records: list[dict],
    tokenizer: PreTrainedTokenizerBase,
    *,
    seq_len: int,
    label2id: dict[str, int] | None = None,
    stride: int | None = None,
    pack: bool | None = None,
) -> list[dict]:
    """Features of ``records`` for ``task``: dicts of python lists of ints plus ``example_index``.

    mlm: ``{"input_ids"}`` chunks of ``seq_len`` over the concatenated texts (masking is the
    collator's); ``pack=False``, the default when a text holds ``<mask>``, keeps one feature per
    record instead. classification: ``{"input_ids", "attention_mask", "labels"}``.
    token-classification: ``{"input_ids", "attention_mask", "labels", "word_ids"}`` with labels
    -100 on specials and on non-first sub-tokens and word_ids -1 on specials. qa: one feature per
    window of a long context (``stride`` tokens of overlap, default ``seq_len // 4``) with
    ``"start_positions"``/``"end_positions"`` (0 when the answer is not in the window) and
    ``"offset_mapping"`` (``[start, end]`` char offsets into the context for context tokens, None
    elsewhere). multiple-choice: ``{"input_ids", "attention_mask"}`` of shape [choices][seq] and
    ``"labels"``. Labels are absent when the records carry none.
    """
    check_task(task)
    if seq_len < 8:
        raise ValueError(f"seq_len must be at least 8, got {seq_len}")
    if task == "mlm":
        return _mlm(records, tokenizer, seq_len, pack)
    if task == "classification":
        return _classification(records, tokenizer, seq_len, label2id)
    if task == "token-classification":
        return _token_classification(records, tokenizer, seq_len, label2id)
    if task == "qa":
        return _qa(records, tokenizer, seq_len, stride)
    return _multiple_choice(records, tokenizer, seq_len)
