"""Metrics of every task, the optimiser schedule and the batch schedule, on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from yoso_core import metrics
from yoso_core.training.optim import build_optimizer, build_scheduler, warmup_linear
from yoso_core.training.schedule import BatchSchedule


def test_accuracy_and_macro_f1():
    assert metrics.accuracy([1, 0, 1, 1], [1, 0, 0, 1]) == 0.75
    # class 0: tp 1 fp 0 fn 1 -> 2/3; class 1: tp 2 fp 1 fn 0 -> 4/5
    assert metrics.macro_f1([1, 0, 1, 1], [1, 0, 0, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    # a label only predicted, never gold, still counts (F1 0)
    assert metrics.macro_f1([2, 0], [0, 0]) == pytest.approx((2 / 3 + 0.0) / 2)
    assert math.isnan(metrics.accuracy([], []))


def test_bio_entities_and_entity_scores():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG", "I-ORG"]
    assert metrics.bio_entities(tags) == {("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("ORG", 5, 7)}
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"]]
    pred = [["B-PER", "O", "O"], ["B-LOC", "O"]]  # PER span cut short: wrong; LOC right
    scores = metrics.entity_metrics(gold, pred)
    assert scores == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert metrics.entity_metrics([["O"]], [["O"]])["f1"] == 0.0
    assert metrics.token_accuracy(gold, pred) == 0.8


def test_squad_exact_match_and_f1():
    assert metrics.normalize_answer("The  Pass-key!") == "passkey"
    assert metrics.exact_match("the 12345.", ["12345"]) == 1.0
    assert metrics.exact_match("1234", ["12345"]) == 0.0
    assert metrics.qa_f1("big red dog", ["red dog"]) == pytest.approx(0.8)
    scores = metrics.squad_metrics(["12345", "a cat"], [["12345"], ["the dog"]])
    assert scores["exact_match"] == 50.0
    assert scores["f1"] == 50.0


def test_mlm_metrics():
    out = metrics.mlm_metrics(loss_sum=6.0, masked_tokens=3, correct=1)
    assert out["loss"] == 2.0
    assert out["perplexity"] == pytest.approx(math.exp(2.0))
    assert out["accuracy"] == pytest.approx(1 / 3)


def test_warmup_then_linear_decay():
    values = [warmup_linear(step, 4, 10) for step in range(11)]
    assert values[:4] == [0.2, 0.4, 0.6, 0.8]
    assert values[4] == 1.0
    assert values[7] == pytest.approx(0.5)
    assert values[10] == 0.0
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    optimizer = build_optimizer(model, learning_rate=0.1, weight_decay=0.5)
    decay, no_decay = optimizer.param_groups
    assert [p.shape for p in decay["params"]] == [torch.Size([3, 3])]  # only the matrix decays
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
    scheduler = build_scheduler(optimizer, warmup_steps=4, total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.02) and lrs[4] == pytest.approx(0.1) and lrs[9] == pytest.approx(0.1 / 6)


def test_batch_schedule_shards_the_global_batch_and_covers_each_epoch():
    single = BatchSchedule(10, 4, seed=3)
    ranks = [BatchSchedule(10, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    for micro in range(6):
        assert single.indices(micro) == ranks[0].indices(micro) + ranks[1].indices(micro)
    stream = [i for micro in range(5) for i in single.indices(micro)]  # 20 positions = 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert stream[:10] != stream[10:]  # a fresh permutation per epoch
    assert BatchSchedule(10, 4, seed=4).indices(0) != single.indices(0)
    assert single.epoch(5) == 2.0


def test_predict_scores_labelled_input_with_the_task_metrics_training_reports():
    """``yoso predict``'s scoring and training's evaluation share ``task_metrics``: same keys, same values."""
    from yoso_core.predict import score

    answers = [{"label": "1"}, {"label": "0"}, {"label": "1"}, {"label": "1"}]
    reported = score("classification", [1, 0, 0, 1], answers)
    assert reported == {"lines": 4, **metrics.task_metrics("classification", [1, 0, 1, 1], [1, 0, 0, 1])}
    assert reported["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert score("multiple-choice", [2, 0], [{"choice": 2}, {"choice": 1}]) == {"lines": 2, "accuracy": 0.5}
    golds = [{"text": ["12345"]}, {"text": ["the dog"]}]
    assert score("qa", golds, [{"answer": "12345"}, {"answer": "a cat"}]) == {
        "lines": 2,
        "exact_match": 50.0,
        "f1": 50.0,
    }


def test_tagging_metrics_leave_out_words_without_a_gold_tag():
    gold = [["B-PER", None, "O"], [None, "B-LOC"]]
    pred = [["B-PER", "I-PER", "O"], ["B-ORG", "B-LOC"]]
    # without the None words: [B-PER, O] and [B-LOC], predicted exactly
    want = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "token_accuracy": 1.0}
    assert metrics.task_metrics("token-classification", pred, gold) == want
    from yoso_core.predict import score

    answers = [{"tags": row} for row in pred]
    assert score("token-classification", gold, answers) == {"lines": 2, **want}
    with pytest.raises(ValueError, match="no task metrics for 'mlm'"):
        metrics.task_metrics("mlm", [], [])


def test_evaluation_has_one_tally_for_every_task():
    """Evaluation picks what to gather by task in one place: every task has its entry there."""
    from yoso_core.training.config import TASKS
    from yoso_core.training.evaluate import _TALLIES

    assert set(_TALLIES) == set(TASKS)
