"""Evaluation metrics of every task, as plain functions of predictions and gold labels.

- masked LM: mean cross-entropy over masked tokens, perplexity ``exp(loss)``, accuracy of the
  top-1 token at masked positions;
- classification: accuracy and macro-F1 (mean F1 over every label seen in gold or predictions);
- token classification: entity-level precision/recall/F1 over BIO spans (an entity counts only when
  its type, start and end all match, as in conlleval / seqeval);
- QA: SQuAD exact match and token F1 after SQuAD normalisation (lower case, no punctuation, no
  articles, single spaces), each the best over the gold answers, averaged over questions, in %;
- multiple choice: accuracy.

``task_metrics`` is the one entry point per task: training's evaluation and ``yoso predict``'s
scoring of labelled input both call it, so they report the same figures.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Sequence
from typing import Any


def mlm_metrics(loss_sum: float, masked_tokens: int, correct: int) -> dict[str, float]:
    """Loss (mean over masked tokens), perplexity and accuracy from running sums."""
    if masked_tokens == 0:
        return {"loss": float("nan"), "perplexity": float("nan"), "accuracy": float("nan")}
    loss = loss_sum / masked_tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / masked_tokens}


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction of predictions equal to their label (nan when there are none)."""
    if len(labels) == 0:
        return float("nan")
    return sum(int(p == g) for p, g in zip(predictions, labels)) / len(labels)


def macro_f1(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Unweighted mean of per-label F1 over every label that occurs in the gold labels or predictions."""
    classes = sorted(set(labels) | set(predictions))
    if not classes:
        return float("nan")
    scores = []
    for c in classes:
        tp = sum(1 for p, g in zip(predictions, labels) if p == c and g == c)
        fp = sum(1 for p, g in zip(predictions, labels) if p == c and g != c)
        fn = sum(1 for p, g in zip(predictions, labels) if p != c and g == c)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def classification_metrics(predictions: Sequence[int], labels: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-F1."""
    return {"accuracy": accuracy(predictions, labels), "macro_f1": macro_f1(predictions, labels)}


def bio_entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entities ``(type, start, end_exclusive)`` of a BIO tag sequence; a stray ``I-X`` starts an entity."""
    entities: set[tuple[str, int, int]] = set()
    kind, start = None, 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        continues = prefix == "I" and label == kind
        if kind is not None and not continues:
            entities.add((kind, start, i))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = label, i
    return entities


def entity_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 over sentences of BIO tags (micro-averaged)."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, predicted):
        g_ents, p_ents = bio_entities(g), bio_entities(p)
        tp += len(g_ents & p_ents)
        n_gold += len(g_ents)
        n_pred += len(p_ents)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def token_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Fraction of words whose predicted tag equals the gold tag."""
    pairs = [(a, b) for g, p in zip(gold, predicted) for a, b in zip(g, p)]
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else float("nan")


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer (or both are empty)."""
    if not answers:
        return float(normalize_answer(prediction) == "")
    return float(any(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def _token_f1(prediction: str, answer: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def qa_f1(prediction: str, answers: Sequence[str]) -> float:
    """Best SQuAD token F1 of ``prediction`` over the gold answers."""
    if not answers:
        return float(normalize_answer(prediction) == "")
    return max(_token_f1(prediction, a) for a in answers)


def squad_metrics(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact match and F1 in percent, averaged over questions."""
    if not predictions:
        return {"exact_match": float("nan"), "f1": float("nan")}
    em = sum(exact_match(p, a) for p, a in zip(predictions, answers)) / len(predictions)
    f1 = sum(qa_f1(p, a) for p, a in zip(predictions, answers)) / len(predictions)
    return {"exact_match": 100.0 * em, "f1": 100.0 * f1}


def tagging_metrics(
    gold: Sequence[Sequence[str | None]], predicted: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Entity precision, recall and F1 and token accuracy; a ``None`` gold tag (a word without a
    label) is left out of both sequences before scoring."""
    pairs = [
        [(g, p) for g, p in zip(gold_row, pred_row) if g is not None]
        for gold_row, pred_row in zip(gold, predicted)
    ]
    gold_tags = [[g for g, _ in row] for row in pairs]
    pred_tags = [[p for _, p in row] for row in pairs]
    return {**entity_metrics(gold_tags, pred_tags), "token_accuracy": token_accuracy(gold_tags, pred_tags)}


def task_metrics(task: str, predictions: Sequence[Any], gold: Sequence[Any]) -> dict[str, float]:
    """The metrics of ``task`` (all but mlm, see ``mlm_metrics``) of ``predictions`` against ``gold``.

    classification: labels (accuracy, macro-F1); multiple-choice: choice indices (accuracy);
    token-classification: tag sequences (``tagging_metrics``); qa: answer strings against each
    question's gold answer texts (``squad_metrics``).
    """
    if task == "classification":
        return classification_metrics(predictions, gold)
    if task == "multiple-choice":
        return {"accuracy": accuracy(predictions, gold)}
    if task == "token-classification":
        return tagging_metrics(gold, predictions)
    if task == "qa":
        return squad_metrics(predictions, gold)
    raise ValueError(
        f"no task metrics for {task!r}; expected classification, multiple-choice, token-classification or qa"
    )
