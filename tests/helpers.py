"""What several test files share: the tiny model config, the kernel closeness check, the CLI invoker."""

from __future__ import annotations

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
