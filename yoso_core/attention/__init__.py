"""The functional attention API: ``yoso_attention`` and its building blocks.

    out = yoso_attention(query, key, value, mask=None, *, num_hash=32, hash_code_len=8,
                         expectation=False, fast_hash=True, lsh_backward=True,
                         backend="auto", generator=None)

``query``, ``key``, ``value``: ``(batch, heads, seq, head_dim)``, query and key unit vectors.
``mask``: ``(batch, seq)``, 1 = token, 0 = padding, applied to queries and keys. Returns the raw
cumulation ``sum_j p_ij v_j`` (exact with ``expectation=True``, sampled otherwise) in ``value``'s
dtype; normalising the output is the model layer's job.
"""

from __future__ import annotations

import torch

from ..config import hash_setting_error
from . import hashing
from .backends import BACKENDS, REFERENCE, Backend, resolve_backend
from .expectation import expectation_weights, yoso_e
from .lsh_attention import lsh_attention
from .sampled import lsh_cumulation, lsh_weighted_cumulation

__all__ = [
    "BACKENDS",
    "REFERENCE",
    "Backend",
    "expectation_weights",
    "hash_codes",
    "lsh_attention",
    "lsh_cumulation",
    "lsh_weighted_cumulation",
    "resolve_backend",
    "yoso_attention",
    "yoso_e",
]

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_FLOAT16_MAX = torch.finfo(torch.float16).max


def check_attention_inputs(query, key, value, mask, num_hash: int, hash_code_len: int) -> None:
    """Raise ValueError naming the tensor, what was expected and what came."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name} must have shape (batch, heads, seq, head_dim), got rank {t.dim()} "
                f"shape {tuple(t.shape)}"
            )
        if t.dtype not in _FLOAT_DTYPES:
            raise ValueError(
                f"{name} must be a floating tensor (float32, float16 or bfloat16), got {t.dtype}"
            )
    b, h, n, d = query.shape
    if key.shape[:2] != (b, h) or value.shape[:2] != (b, h):
        raise ValueError(
            f"query, key and value must share (batch, heads); got {tuple(query.shape)}, "
            f"{tuple(key.shape)}, {tuple(value.shape)}"
        )
    if key.shape[3] != d:
        raise ValueError(f"key must have head_dim {d} like query, got {key.shape[3]}")
    if key.shape[2] != value.shape[2]:
        raise ValueError(
            f"key and value must have the same seq length, got {key.shape[2]} and {value.shape[2]}"
        )
    if mask is not None:
        if key.shape[2] != n:
            raise ValueError(f"a mask needs query and key of one seq length, got {n} and {key.shape[2]}")
        if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or tuple(mask.shape) != (b, n):
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask must have shape (batch, seq) = {(b, n)}, got {shape}")
    for problem in (
        hash_setting_error("hash_code_len", hash_code_len),
        hash_setting_error("num_hash", num_hash),
    ):
        if problem:
            raise ValueError(problem)


def _flat_mask(mask: torch.Tensor | None, batch: int, heads: int, seq: int, device) -> torch.Tensor:
    """``(batch, seq)`` 0/1 mask (or None) -> float32 ``(batch*heads, seq)``."""
    if mask is None:
        return torch.ones(batch * heads, seq, device=device, dtype=torch.float32)
    m = (mask != 0).to(device=device, dtype=torch.float32)
    return m[:, None, :].expand(batch, heads, seq).reshape(batch * heads, seq)


def hash_codes(
    query: torch.Tensor,
    key: torch.Tensor,
    num_hash: int,
    hash_code_len: int,
    *,
    fast_hash: bool = True,
    backend: Backend = REFERENCE,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the hash functions (one set per head, shared across the batch) and hash queries and keys.

    Inputs ``(batch, heads, seq, head_dim)``; returns int32 codes ``(batch*heads, seq, num_hash)``.
    Sharing across the batch makes a sequence's result independent of what it is batched with.
    """
    b, h, _, d = query.shape
    draw = hashing.draw_fast_hash_diagonals if fast_hash else hashing.draw_simhash_projection
    rand = draw(h, d, num_hash, hash_code_len, query.device, generator)
    rand = rand[None].expand(b, *rand.shape).reshape(b * h, *rand.shape[1:]).contiguous()
    q, k = query.reshape(b * h, -1, d), key.reshape(b * h, -1, d)
    if fast_hash:
        return backend.fast_hash(q, rand, num_hash, hash_code_len), backend.fast_hash(
            k, rand, num_hash, hash_code_len
        )
    return hashing.simhash(q, rand, num_hash, hash_code_len), hashing.simhash(
        k, rand, num_hash, hash_code_len
    )


def yoso_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    num_hash: int = 32,
    hash_code_len: int = 8,
    expectation: bool = False,
    fast_hash: bool = True,
    lsh_backward: bool = True,
    backend: str = "auto",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """YOSO attention of unit-vector queries and keys; see the module docstring for the contract."""
    check_attention_inputs(query, key, value, mask, num_hash, hash_code_len)
    if value.dtype == torch.float16:
        # Computed in float32; a raw cumulation beyond float16's range is refused, never returned as inf.
        out = yoso_attention(
            query.float(),
            key.float(),
            value.float(),
            mask,
            num_hash=num_hash,
            hash_code_len=hash_code_len,
            expectation=expectation,
            fast_hash=fast_hash,
            lsh_backward=lsh_backward,
            backend=backend,
            generator=generator,
        )
        peak = float(out.detach().abs().amax()) if out.numel() else 0.0
        if not peak <= _FLOAT16_MAX:
            raise ValueError(
                f"the float16 attention output would overflow: its largest magnitude is {peak:.4g}, "
                f"float16 holds at most {_FLOAT16_MAX:g}; pass float32 query, key and value "
                "(the model layers do) or scale value down"
            )
        return out.to(torch.float16)
    b, h, n_q, d = query.shape
    n_k, d_v = value.shape[2], value.shape[3]
    q_mask = _flat_mask(mask, b, h, n_q, query.device)
    k_mask = _flat_mask(mask, b, h, n_k, query.device)
    q = query.reshape(b * h, n_q, d)  # (batch*heads, seq, head_dim)
    k = key.reshape(b * h, n_k, d)
    v = value.reshape(b * h, n_k, d_v)
    if expectation:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        out = yoso_e(q, k, v, q_mask, k_mask, hash_code_len)
    else:
        chosen = resolve_backend(backend, query.device)
        q_codes, k_codes = hash_codes(
            query, key, num_hash, hash_code_len, fast_hash=fast_hash, backend=chosen, generator=generator
        )
        out = lsh_attention(
            q, k, v, q_mask, k_mask, q_codes, k_codes, hash_code_len, lsh_backward, chosen.name
        )
    return out.reshape(b, h, n_q, d_v)
