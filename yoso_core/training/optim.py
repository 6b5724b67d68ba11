"""AdamW and its learning-rate schedule: linear warm-up to the peak, then linear decay to zero.

    lr(step) = peak * (step + 1) / (warmup + 1)              for step < warmup (never exactly 0)
             = peak * (total - step) / (total - warmup)      afterwards (0 at step = total)

``step`` counts optimiser steps already taken.

Biases and LayerNorm weights get no weight decay, as is usual for transformer encoders.
"""

from __future__ import annotations

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices and embeddings with ``weight_decay``, biases and norms without."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.dim() < 2 or "LayerNorm" in name or name.endswith(".bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    model: nn.Module,
    *,
    learning_rate: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters (see ``parameter_groups``)."""
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=learning_rate, betas=betas, eps=eps)


def warmup_linear(step: int, warmup_steps: int, total_steps: int) -> float:
    """The schedule's multiplier of the peak learning rate at ``step`` (see the module docstring)."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following ``warmup_linear``; call ``step()`` once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_linear(step, warmup_steps, total_steps)
    )
