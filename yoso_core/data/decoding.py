"""Model outputs to JSON-ready answers: ``decode`` turns each record's feature outputs into its answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .schema import check_task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MAX_ANSWER_TOKENS = 30
_QA_CANDIDATES = 20  # best start and end tokens tried per window


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _label(id2label: dict | None, index: int) -> str:
    if id2label is None:
        return str(index)
    return str(id2label.get(index, id2label.get(str(index), index)))


def _entities(tokens: list[str], tags: list[str]) -> list[dict]:
    """BIO spans as ``{"type", "start", "end", "text"}`` with word indices, ``end`` exclusive.

    ``B-X`` opens a span, ``I-X`` extends an open span of type X or opens one, anything else closes.
    """
    spans: list[dict] = []
    open_span: dict | None = None
    for i, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix == "I" and open_span is not None and open_span["type"] == kind:
            open_span["end"] = i + 1
            continue
        open_span = None
        if prefix in ("B", "I") and kind:
            open_span = {"type": kind, "start": i, "end": i + 1}
            spans.append(open_span)
    return [{**s, "text": " ".join(tokens[s["start"] : s["end"]])} for s in spans]


def _decode_mlm(record, features, outputs, tokenizer, top_k) -> dict:
    """Top-k fills of every ``<mask>``; ``sequence`` is the input text with that one mask filled."""
    mask = tokenizer.mask_token
    parts = record["text"].split(mask)  # parts[m] | mask m | parts[m + 1]
    answered = {}  # mask number -> its options
    for feature, output in zip(features, outputs):
        ids = feature["input_ids"]
        logits = np.asarray(output["logits"])[: len(ids)]  # (seq, vocab)
        masks = feature.get("masks")
        if masks is None:  # one window: every mask in it, in order
            masks = [
                [k, m] for m, k in enumerate(k for k, t in enumerate(ids) if t == tokenizer.mask_token_id)
            ]
        for position, m in masks:
            probs = _softmax(logits[position])
            options = []
            for token_id in np.argsort(-probs)[:top_k].tolist():
                token = tokenizer.decode([token_id]).strip()
                sequence = (
                    mask.join(parts[: m + 1]) + token + mask.join(parts[m + 1 :])
                    if m + 1 < len(parts)
                    else ""
                )
                options.append(
                    {
                        "token": token,
                        "token_id": token_id,
                        "score": float(probs[token_id]),
                        "sequence": sequence,
                    }
                )
            answered[m] = options
    return {"fills": [answered[m] for m in sorted(answered)]}


def _decode_tokens(record, features, outputs, id2label) -> dict:
    tags = ["O"] * len(record["tokens"])  # a word with no sub-token stays "O"
    for feature, output in zip(features, outputs):
        word_ids = feature["word_ids"]
        best = np.asarray(output["logits"])[: len(word_ids)].argmax(-1)  # (seq,)
        for k in feature["first_tokens"]:  # each word's first sub-token, in the window that owns it
            tags[word_ids[k]] = _label(id2label, int(best[k]))
    return {"tokens": record["tokens"], "tags": tags, "entities": _entities(record["tokens"], tags)}


def _decode_qa(record, features, outputs) -> dict:
    best = {"answer": "", "start": 0, "end": 0, "score": 0.0}
    for feature, output in zip(features, outputs):
        offsets = feature["offset_mapping"]
        n = len(offsets)
        start_p = _softmax(np.asarray(output["start_logits"])[:n])  # (seq,)
        end_p = _softmax(np.asarray(output["end_logits"])[:n])
        starts = [k for k in np.argsort(-start_p).tolist() if offsets[k] is not None][:_QA_CANDIDATES]
        ends = [k for k in np.argsort(-end_p).tolist() if offsets[k] is not None][:_QA_CANDIDATES]
        for s in starts:
            for e in ends:
                if s <= e < s + MAX_ANSWER_TOKENS and start_p[s] * end_p[e] > best["score"]:
                    a, b = offsets[s][0], offsets[e][1]
                    best = {
                        "answer": record["context"][a:b],
                        "start": a,
                        "end": b,
                        "score": float(start_p[s] * end_p[e]),
                    }
    return best


def decode(
    task: str,
    records: list[dict],
    features: list[dict],
    outputs: list[dict],
    tokenizer: PreTrainedTokenizerBase,
    *,
    id2label: dict[int, str] | None = None,
    top_k: int = 5,
) -> list[dict]:
    """One JSON-ready answer per record, in order, with ``"id"`` copied when present.

    ``outputs`` holds one dict of numpy arrays per feature (same order as ``features``). mlm:
    ``{"fills": [[{"token", "token_id", "score", "sequence"}, ... top_k] per <mask>]}`` (every
    mask, each answered in the window that owns it);
    classification ``{"label", "score"}``; token-classification ``{"tokens", "tags", "entities":
    [{"type", "start", "end" (exclusive), "text"}]}`` (word indices; each word's tag from the
    window that owns it, so long inputs are tagged throughout); qa ``{"answer", "start",
    "end", "score"}`` (char offsets into the context, best span over all windows, at most 30
    tokens, score = P(start) * P(end) in its window); multiple-choice ``{"choice", "scores"}``.
    """
    check_task(task)
    if len(features) != len(outputs):
        raise ValueError(f"decode needs one output per feature, got {len(outputs)} for {len(features)}")
    grouped: list[list[int]] = [[] for _ in records]
    for k, feature in enumerate(features):
        grouped[feature["example_index"]].append(k)
    results = []
    for i, record in enumerate(records):
        feats = [features[k] for k in grouped[i]]
        outs = [outputs[k] for k in grouped[i]]
        if task == "mlm":
            result = _decode_mlm(record, feats, outs, tokenizer, top_k)
        elif task == "classification":
            probs = _softmax(outs[0]["logits"])  # (num_labels,)
            result = {"label": _label(id2label, int(probs.argmax())), "score": float(probs.max())}
        elif task == "token-classification":
            result = _decode_tokens(record, feats, outs, id2label)
        elif task == "qa":
            result = _decode_qa(record, feats, outs)
        else:
            probs = _softmax(outs[0]["logits"])  # (choices,)
            result = {"choice": int(probs.argmax()), "scores": [float(p) for p in probs]}
        results.append({"id": record["id"], **result} if "id" in record else result)
    return results
