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


def weights_backward(
    grad_weights: torch.Tensor,
    weights: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    hash_code_len: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The surrogate gradients (float32) for query and key given ``dL/dA`` (``grad_weights``).

    ``dq_i = (tau/2) sum_j A_ij dA_ij k_j`` and ``dk_j = (tau/2) sum_i A_ij dA_ij q_i``; with
    ``dA_ij = g_i . v_j`` (``out = A V``) this is YOSO-E's surrogate. Any leading batch dimensions.
    """
    weighted = grad_weights.float() * weights  # (..., n_q, n_k)
    half_tau = hash_code_len / 2
    grad_query = torch.matmul(weighted, key.float()) * half_tau
    grad_key = torch.matmul(weighted.transpose(-1, -2), query.float()) * half_tau
    return grad_query, grad_key


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
    grad_weights = torch.bmm(grad, value.float().transpose(-1, -2))  # (bh, n_q, n_k): g_i . v_j
    grad_query, grad_key = weights_backward(grad_weights, weights, query, key, hash_code_len)
    grad_value = torch.bmm(weights.transpose(-1, -2), grad)
    return grad_query, grad_key, grad_value


class ExpectationWeights(torch.autograd.Function):
    """YOSO-E weights ``A`` (float32 ``(batch, heads, n, n)``) of unit Q, K, with the surrogate backward.

    Inputs ``(batch, heads, n, d)`` and a ``(batch, n)`` mask. Backward is ``weights_backward``:
    composed with ``out = A V`` it is exactly YOSO-E's surrogate gradient.
    """

    @staticmethod
    def forward(ctx, query, key, mask, hash_code_len):
        b, h, n, d = query.shape
        flat_mask = mask[:, None, :].expand(b, h, n).reshape(b * h, n)
        weights = expectation_weights(
            query.reshape(b * h, n, d), key.reshape(b * h, n, d), flat_mask, flat_mask, hash_code_len
        ).reshape(b, h, n, n)
        ctx.save_for_backward(weights, query, key)
        ctx.hash_code_len = hash_code_len
        return weights

    @staticmethod
    def backward(ctx, grad):
        weights, query, key = ctx.saved_tensors
        grad_query, grad_key = weights_backward(grad, weights, query, key, ctx.hash_code_len)
        return grad_query.to(query.dtype), grad_key.to(key.dtype), None, None


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
