"""Print the accuracy figures of yoso's attention: transformers parity and sampled-YOSO unbiasedness.

    .venv/bin/python scripts/accuracy.py

Parity: the largest logit difference between transformers' Yoso classes and ours, same weights,
five heads, conv_window None and 3. Unbiasedness: relative error of sampled YOSO against YOSO-E as
num_hash grows (1/sqrt(m) for an unbiased estimator), and E[z^2] of the mean of many independent
estimates (1 when the estimator is unbiased, larger when biased).
"""

from __future__ import annotations

import math

import torch
import transformers

import yoso_core
from yoso_core.attention import yoso_attention

HEADS = (
    "YosoModel",
    "YosoForMaskedLM",
    "YosoForSequenceClassification",
    "YosoForTokenClassification",
    "YosoForQuestionAnswering",
)
TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    num_labels=3,
)


def parity() -> float:
    """Largest |output difference| between transformers and yoso_core over heads and conv windows."""
    worst = 0.0
    for conv in (None, 3):
        for name in HEADS:
            theirs = getattr(transformers, name)(transformers.YosoConfig(conv_window=conv, **TINY)).eval()
            ours = getattr(yoso_core, name)(yoso_core.YosoConfig(conv_window=conv, **TINY)).eval()
            ours.load_state_dict(theirs.state_dict())
            ids = torch.randint(3, TINY["vocab_size"], (2, 24))
            for a, b in zip(theirs(ids).values(), ours(ids).values()):
                if isinstance(a, torch.Tensor):
                    worst = max(worst, (a - b).abs().max().item())
    return worst


def unbiasedness(fast: bool, tau: int = 4, runs: int = 100) -> tuple[list[float], float]:
    """Relative errors against YOSO-E at m = 4, 16, 64, 256, and E[z^2] of the mean of ``runs`` estimates."""
    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(1, 4, 48, 32, generator=gen), dim=-1)
    k = torch.nn.functional.normalize(q + 0.7 * torch.randn(1, 4, 48, 32, generator=gen), dim=-1)
    v = torch.randn(1, 4, 48, 32, generator=gen)
    exact = yoso_attention(q, k, v, expectation=True, hash_code_len=tau)

    def estimate(m: int, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return yoso_attention(
            q, k, v, num_hash=m, hash_code_len=tau, fast_hash=fast, backend="reference", generator=generator
        )

    errors = [
        sum(((estimate(m, s) - exact).norm() / exact.norm()).item() for s in range(4)) / 4
        for m in (4, 16, 64, 256)
    ]
    est = torch.stack([estimate(32, s) for s in range(runs)])
    z = (est.mean(0) - exact) / (est.std(0) / math.sqrt(runs))
    return errors, (z**2).mean().item()


def main() -> None:
    torch.manual_seed(0)
    print(f"parity: max |output difference| transformers vs yoso_core, 5 heads x conv None/3: {parity():.2e}")
    for fast in (False, True):
        errors, z2 = unbiasedness(fast)
        name = "fast hash" if fast else "SimHash  "
        shown = "/".join(f"{e:.3f}" for e in errors)
        print(
            f"{name}: relative error vs YOSO-E at num_hash 4/16/64/256: {shown}; "
            f"E[z^2] of the mean of 100 estimates (num_hash 32, tau 4): {z2:.2f}"
        )


if __name__ == "__main__":
    main()
