"""Records to features: token ids per task, strided windows, word-label alignment, MLM chunks.

Inputs longer than ``seq_len`` are cut into overlapping windows (QA, token classification and
masked-LM prediction), so no token is dropped; classification and multiple choice truncate
(a feature's ``cut_tokens`` says how many tokens its record lost, so prediction can warn).

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


class EncodingError(DataError):
    """A record that cannot be encoded: ``index`` is its 0-based position in the records given to
    ``encode`` and ``reason`` says why (the message is ``record {index + 1}: {reason}``)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"record {index + 1}: {reason}")
        self.index, self.reason = index, reason


def _label_id(label2id: dict[str, int] | None, label: str, index: int, what: str) -> int:
    if label2id is None:
        raise ValueError(f"encoding {what}s needs label2id (see label_names)")
    if label not in label2id:
        known = ", ".join(map(str, label2id))
        raise EncodingError(
            index,
            f"{what} {label!r} is not one of the model's {what}s ({known}); "
            f"use the model's {what}s or train a new model",
        )
    return label2id[label]


def _bos_eos(tokenizer) -> tuple[int, int]:
    """The ids that open and close a single sequence (``<s>`` and ``</s>``)."""
    bos = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    eos = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if bos is None or eos is None:
        raise ValueError("masked-LM chunks need a tokenizer with cls/bos and sep/eos tokens")
    return bos, eos


def windows(n: int, body: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Windows of at most ``body`` tokens over ``n`` tokens, consecutive ones sharing ``stride``.

    Returns ``(start, end, own_start, own_end)`` per window: the window is tokens ``[start, end)``
    and it *owns* ``[own_start, own_end)``, the tokens closer to its middle than to any other
    window's, so each token is owned by exactly one window (the one giving it the most context).
    Every window is full (the last one is moved back to end at ``n``); one window when ``n <= body``.
    """
    if stride < 0 or stride >= body:
        raise ValueError(f"the stride ({stride}) must be at least 0 and below the window ({body} tokens)")
    starts = [0]
    while starts[-1] + body < n:
        starts.append(min(starts[-1] + body - stride, n - body))
    ends = [min(s + body, n) for s in starts]
    cuts = [0, *((ends[i] + starts[i + 1]) // 2 for i in range(len(starts) - 1)), n]
    return [(s, e, cuts[i], cuts[i + 1]) for i, (s, e) in enumerate(zip(starts, ends))]


def _mlm_windows(text: str, index: int, tokenizer, body: int, stride: int) -> list[dict]:
    """Windows of one prediction text, each with ``masks``: ``[position, mask number]`` of the
    ``<mask>`` tokens it owns (every mask is owned once); windows that own no mask are dropped,
    except the first when the text holds none."""
    bos, eos = _bos_eos(tokenizer)
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    numbers = {}  # token position -> mask number
    for t, token in enumerate(ids):
        if token == tokenizer.mask_token_id:
            numbers[t] = len(numbers)
    features = []
    for start, end, own_start, own_end in windows(len(ids), body, stride):
        masks = [[t - start + 1, m] for t, m in numbers.items() if own_start <= t < own_end]
        if masks or (not numbers and not features):
            features.append(
                {"input_ids": [bos, *ids[start:end], eos], "masks": masks, "example_index": index}
            )
    return features


def _mlm(records: list[dict], tokenizer, seq_len: int, pack: bool | None, stride: int) -> list[dict]:
    """Texts joined by ``</s>`` and cut into chunks of ``seq_len`` (``<s> ... </s>``); with
    ``pack=False`` (the default when a text holds ``<mask>``: prediction input) strided windows
    of each record (see ``_mlm_windows``)."""
    mask = tokenizer.mask_token
    if pack is None:
        pack = not (mask and any(mask in r["text"] for r in records))
    bos, eos = _bos_eos(tokenizer)
    body = seq_len - 2  # room for <s> and </s>
    if not pack:
        return [f for i, r in enumerate(records) for f in _mlm_windows(r["text"], i, tokenizer, body, stride)]
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


def _truncated(tokenizer, text, pair, seq_len: int) -> tuple[Any, int]:
    """``tokenizer(text, pair)`` cut to ``seq_len`` tokens, and how many tokens the longest sequence
    lost. ``text`` and ``pair`` are strings, or lists of them for several sequences at once; only a
    sequence that came out ``seq_len`` long can have been cut, so only then is it measured whole."""
    enc = tokenizer(text, pair, truncation=True, max_length=seq_len)
    rows = [enc["input_ids"]] if isinstance(text, str) else enc["input_ids"]
    if all(len(row) < seq_len for row in rows):
        return enc, 0
    whole = tokenizer(text, pair, verbose=False)["input_ids"]
    lengths = [len(whole)] if isinstance(text, str) else [len(row) for row in whole]
    return enc, max(0, max(lengths) - seq_len)


def _classification(records, tokenizer, seq_len, label2id) -> list[dict]:
    features = []
    for i, record in enumerate(records):
        enc, cut = _truncated(tokenizer, record["text"], record.get("text_pair"), seq_len)
        feature = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "example_index": i,
            "cut_tokens": cut,
        }
        if "label" in record:
            feature["labels"] = _label_id(label2id, str(record["label"]), i, "label")
        features.append(feature)
    return features


def _token_classification(records, tokenizer, seq_len, label2id, stride) -> list[dict]:
    """Strided windows over each record's sub-tokens; a word's tag sits on its first sub-token in
    the one window that owns it (``first_tokens`` lists those positions per window)."""
    bos, eos = _bos_eos(tokenizer)
    features = []
    for i, record in enumerate(records):
        tag_ids = None
        if "tags" in record:  # a null tag: a word without a label
            tag_ids = [
                IGNORE if tag is None else _label_id(label2id, tag, i, "tag") for tag in record["tags"]
            ]
        enc = tokenizer(record["tokens"], is_split_into_words=True, add_special_tokens=False, verbose=False)
        ids = enc["input_ids"]
        words = [-1 if w is None else w for w in enc.word_ids()]
        starts = {t for t, w in enumerate(words) if w >= 0 and (t == 0 or words[t - 1] != w)}
        for start, end, own_start, own_end in windows(len(ids), seq_len - 2, stride):
            word_ids = [-1, *words[start:end], -1]
            first = [t - start + 1 for t in range(own_start, own_end) if t in starts]
            feature = {
                "input_ids": [bos, *ids[start:end], eos],
                "attention_mask": [1] * (end - start + 2),
                "word_ids": word_ids,
                "first_tokens": first,
                "example_index": i,
            }
            if tag_ids is not None:
                labels = [IGNORE] * len(word_ids)
                for k in first:
                    labels[k] = tag_ids[word_ids[k]]
                feature["labels"] = labels
            features.append(feature)
    return features


def _qa(records, tokenizer, seq_len, stride) -> list[dict]:
    stride = seq_len // 4 if stride is None else stride
    features = []
    for i, record in enumerate(records):
        question = record["question"].strip()
        room = seq_len - len(tokenizer(question)["input_ids"]) - 2  # context tokens per window
        if room <= stride:
            question_tokens = seq_len - 2 - room
            if room > 0 and question_tokens <= seq_len // 2:  # a short question: the stride is at fault
                raise EncodingError(
                    i,
                    f"the stride {stride} leaves no room for new context tokens in windows of {seq_len} "
                    f"tokens (the question takes {question_tokens} and each window {room} of context); "
                    f"use a stride below {max(room, 1)} (--stride, default seq-len/4)",
                )
            raise EncodingError(
                i,
                f"the question is too long for windows of {seq_len} tokens with a "
                f"stride of {stride}; shorten the question or raise the sequence length",
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
        enc, cut = _truncated(
            tokenizer, [record["context"]] * len(record["choices"]), record["choices"], seq_len
        )
        feature = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "example_index": i,
            "cut_tokens": cut,
        }
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
    collator's); ``pack=False``, the default when a text holds ``<mask>``, gives each record its
    own windows instead (``stride`` tokens of overlap, default ``seq_len // 4``) with ``"masks"``
    (``[position, mask number]`` of the masks each window answers). classification:
    ``{"input_ids", "attention_mask", "labels", "cut_tokens"}``, ``cut_tokens`` the tokens the
    record lost to ``seq_len`` (the longest choice's for multiple choice). token-classification:
    one feature per window of a long input (``stride`` as for mlm): ``{"input_ids",
    "attention_mask", "labels", "word_ids", "first_tokens"}`` with word_ids -1 on specials,
    ``first_tokens`` the positions that carry their word's tag (its first sub-token, in the one
    window nearest the word) and labels -100 elsewhere. qa: one feature per window of a long
    context (``stride`` tokens of overlap, default ``seq_len // 4``) with
    ``"start_positions"``/``"end_positions"`` (0 when the answer is not in the window) and
    ``"offset_mapping"`` (``[start, end]`` char offsets into the context for context tokens, None
    elsewhere). multiple-choice: ``{"input_ids", "attention_mask"}`` of shape [choices][seq],
    ``"labels"`` and ``"cut_tokens"``. Labels are absent when the records carry none.
    """
    check_task(task)
    if seq_len < 8:
        raise ValueError(f"seq_len must be at least 8, got {seq_len}")
    if task == "mlm":
        return _mlm(records, tokenizer, seq_len, pack, seq_len // 4 if stride is None else stride)
    if task == "classification":
        return _classification(records, tokenizer, seq_len, label2id)
    if task == "token-classification":
        return _token_classification(
            records, tokenizer, seq_len, label2id, seq_len // 4 if stride is None else stride
        )
    if task == "qa":
        return _qa(records, tokenizer, seq_len, stride)
    return _multiple_choice(records, tokenizer, seq_len)
