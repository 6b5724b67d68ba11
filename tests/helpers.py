"""What several test files share: the tiny model config, the kernel closeness check, the CLI invoker,
the tiny classification run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from typer.testing import CliRunner, Result

from yoso_cli.main import app

RTOL = 1e-5
# The tiny YOSO encoder of the model tests (dropout off, so two runs of it compare exactly).
TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    """Elementwise within ``rtol`` of the reference, with an absolute floor of rtol * max|reference|."""
    scale = expected.abs().max().clamp_min(1e-12).item()
    torch.testing.assert_close(actual.cpu(), expected.cpu(), rtol=rtol, atol=rtol * scale)


def invoke(*args: str, input: str | bytes | None = None, catch_exceptions: bool = True) -> Result:
    """Run `yoso ARGS` in process; returns click's Result (stdout and stderr apart)."""
    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=catch_exceptions)


# The tiny classification run of the predict and edge tests: two steps on the built-in data.
TINY_RUN = {
    "model": "tiny",
    "seq_len": 64,
    "num_train": 8,
    "num_validation": 2,
    "max_steps": 2,
    "batch_size": 4,
    "eval_every": 0,
    "save_every": 0,
}


def train_tiny_classifier(output_dir: str | Path, **fields: Any):
    """Train the tiny classification run (``TINY_RUN``, ``fields`` changing it) into ``output_dir``;
    returns its TrainResult (``final_dir`` is the model)."""
    from yoso_core.training import merge_config, train

    options = {**TINY_RUN, "output_dir": str(output_dir), **fields}
    return train(merge_config(None, options, task="classification"))
