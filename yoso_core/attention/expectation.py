"""YOSO-E: the exact expectation of sampled YOSO attention.

    A_ij = (1 - arccos(q_i . k_j) / pi) ** tau * mask_i * mask_j        out = A V

``q``, ``k`` unit vectors ``(bh, n, d)``; ``A`` is ``(bh, n_q, n_k)`` (quadratic memory).

The backward is the surrogate of the paper's code and of transformers, not autograd through
``arccos`` (whose derivative is unbounded at +-1):

    dL/dq_i = (tau/2) sum_j A_ij (g_i . v_j) k_j,   dL/dk_j = (tau/2) sum_i A_ij (g_i . v_j) q_i,
    dL/dV = A^T g
"""

from __future__ import annotations

import math

import torch


def expectation_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
    hash_code_len: int,
) -> torch.Tensor:
    """Collision probabilities ``A`` (float32 ``(bh, n_q, n_k)``); masked rows and columns are 0.

    ``q.k`` is clamped to [-1, 1] so rounding on unit vectors never yields NaN.
    """
    cos = torch.bmm(query.float(), key.float().transpose(-1, -2)).clamp_(-1.0, 1.0)
    weights = (1.0 - torch.acos(cos) / math.pi) ** hash_code_len
    return weights * query_mask.float()[:, :, None] * key_mask.float()[:, None, :]


def surrogate_backward(
    grad: torch.Tensor,
    weights: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    hash_code_len: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The YOSO-E surrogate gradients (float32) for query, key and value given ``A`` (``weights``)."""
    grad = grad.float()
    weighted = torch.bmm(grad, value.float().transpose(-1, -2)) * weights  # (bh, n_q, n_k)
    half_tau = hash_code_len / 2
    grad_query = torch.bmm(weighted, key.float()) * half_tau
    grad_key = torch.bmm(weighted.transpose(-1, -2), query.float()) * half_tau
    grad_value = torch.bmm(weights.transpose(-1, -2), grad)
    return grad_query, grad_key, grad_value


class YosoExpectation(torch.autograd.Function):
    """``out = A V`` with the surrogate backward. Inputs ``(bh, n, d)``; masks ``(bh, n)``."""

    @staticmethod
    def forward(ctx, query, key, value, query_mask, key_mask, hash_code_len):
        weights = expectation_weights(query, key, query_mask, key_mask, hash_code_len)
        ctx.save_for_backward(weights, query, key, value)
        ctx.hash_code_len = hash_code_len
        return torch.bmm(weights, value.float()).to(value.dtype)

    @staticmethod
    def backward(ctx, grad):
        weights, query, key, value = ctx.saved_tensors
        gq, gk, gv = surrogate_backward(grad, weights, query, key, value, ctx.hash_code_len)
        return gq.to(query.dtype), gk.to(key.dtype), gv.to(value.dtype), None, None, None


def yoso_e(query, key, value, query_mask, key_mask, hash_code_len: int) -> torch.Tensor:
    """YOSO-E attention over flattened ``(bh, n, d)`` inputs; see the module docstring."""
    return YosoExpectation.apply(query, key, value, query_mask, key_mask, hash_code_len)
