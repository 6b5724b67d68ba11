"""A tiny model beats chance on every task's built-in set within a bounded number of steps.

Chance levels: classification (ListOps, 10 classes) the majority class of the validation set;
token classification entity F1 ~0 (an entity must match type, start and end); QA exact match ~0
(a 5-digit pass key somewhere in a long document); multiple choice 25%; masked LM 1/vocab.
"""

from __future__ import annotations

import collections
import math

import pytest

from yoso_core.data import load_task_data
from yoso_core.training import merge_config, train

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]


def learn(task: str, tmp_path, **overrides) -> dict:
    """Train a tiny YOSO-E model from scratch on ``task``'s built-in set; return its last evaluation."""
    options = {
        "model": "tiny",
        "seq_len": 64,
        "max_steps": 200,
        "batch_size": 16,
        "learning_rate": 2e-3,
        "dropout": 0.0,
        "num_train": 2000,
        "num_validation": 200,
        "eval_every": 0,
        "save_every": 0,
        "seed": 0,
        "log_every": 50,
        "output_dir": str(tmp_path / task),
        **overrides,
    }
    return train(merge_config(None, options, task=task)).metrics


def test_token_classification_learns_quickly(tmp_path):
    metrics = learn(
        "token-classification",
        tmp_path,
        seq_len=32,
        max_steps=60,
        num_train=480,
        num_validation=64,
        learning_rate=3e-3,
    )
    assert metrics["f1"] > 0.5, metrics


def test_classification_beats_the_majority_class(tmp_path):
    validation = load_task_data("classification", seed=0, seq_len=64, num_train=1, num_validation=200)[
        "validation"
    ]
    majority = collections.Counter(r["label"] for r in validation).most_common(1)[0][1] / len(validation)
    metrics = learn("classification", tmp_path, max_steps=200)
    assert metrics["accuracy"] > max(majority, 0.1) + 0.08, (metrics, majority)


def test_qa_finds_the_pass_key(tmp_path):
    metrics = learn("qa", tmp_path, max_steps=200)
    assert metrics["exact_match"] > 20.0, metrics


@pytest.mark.slow
def test_multiple_choice_beats_a_quarter(tmp_path):
    metrics = learn("multiple-choice", tmp_path, max_steps=200)
    assert metrics["accuracy"] > 0.33, metrics


@pytest.mark.slow
def test_masked_lm_beats_uniform_guessing(tmp_path):
    metrics = learn("mlm", tmp_path, max_steps=400, vocab_size=2000, num_train=None, num_validation=100)
    # uniform guessing: loss ln(2000) = 7.6, accuracy 0.05%
    assert metrics["loss"] < math.log(2000) - 1.0, metrics
    assert metrics["accuracy"] > 0.02, metrics
