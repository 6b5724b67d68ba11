"""Sampled YOSO as one differentiable operator, ``torch.ops.yoso.lsh_attention``.

    lsh_attention(query, key, value, query_mask, key_mask, query_codes, key_codes,
                  hash_code_len, lsh_backward, backend) -> (bh, n_q, dv) in value's dtype

The forward is the LSH cumulation of ``value`` (``sampled.lsh_cumulation``); the gradients of
``query``, ``key`` and ``value`` are the LSH backward (``lsh_backward=True``, linear) or the YOSO-E
surrogate (quadratic). ``backend`` names the implementation ("reference", "cpu" or "cuda").

It is a ``torch.library`` custom operator with a fake and ``register_autograd``, so
``torch.library.opcheck`` checks the backward along with the forward and ``torch.compile``
traces both without a graph break.
"""

from __future__ import annotations

import torch

from .backends import backend_named
from .expectation import expectation_weights, surrogate_backward


@torch.library.custom_op("yoso::lsh_attention", mutates_args=())
def lsh_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
    query_codes: torch.Tensor,
    key_codes: torch.Tensor,
    hash_code_len: int,
    lsh_backward: bool,
    backend: str,
) -> torch.Tensor:
    """Sampled YOSO forward of one backend; shapes as in ``sampled``."""
    ops = backend_named(backend)
    out = ops.lsh_cumulation(query_codes, key_codes, query_mask, key_mask, value, hash_code_len)
    return out.to(value.dtype)


@lsh_attention.register_fake
def _lsh_attention_fake(
    query, key, value, query_mask, key_mask, query_codes, key_codes, hash_code_len, lsh_backward, backend
):
    return value.new_empty((value.shape[0], query_codes.shape[1], value.shape[2]))


_TENSOR_INPUTS = 7  # query, key, value, the masks and the codes; then hash_code_len, lsh_backward, backend


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs[:_TENSOR_INPUTS])
    ctx.hash_code_len, ctx.lsh_backward, ctx.backend = inputs[_TENSOR_INPUTS:]


def _backward(ctx, grad):
    query, key, value, query_mask, key_mask, query_codes, key_codes = ctx.saved_tensors
    tau = ctx.hash_code_len
    grad = grad.contiguous()
    if ctx.lsh_backward:
        grad_query, grad_key, grad_value = backend_named(ctx.backend).lsh_backward(
            query_codes, key_codes, query_mask, key_mask, query, key, value, grad, tau
        )
    else:
        weights = expectation_weights(query, key, query_mask, key_mask, tau)
        grad_query, grad_key, grad_value = surrogate_backward(grad, weights, query, key, value, tau)
    # no gradient for the masks, the codes and the three settings
    return grad_query.to(query.dtype), grad_key.to(key.dtype), grad_value.to(value.dtype), *[None] * 7


lsh_attention.register_autograd(_backward, setup_context=_setup_context)
