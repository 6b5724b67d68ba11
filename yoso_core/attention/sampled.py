"""Sampled YOSO: LSH cumulation, linear in sequence length.

For hash ``f`` every unmasked key adds its value into row ``h_f(k_j)`` of a table of
``2**tau`` rows; every unmasked query reads row ``h_f(q_i)``. Averaged over the ``m`` hashes:

    out_i = mask_i / m * sum_f sum_j [h_f(q_i) == h_f(k_j)] mask_j v_j          (lsh_cumulation)

an estimate of YOSO-E's ``A V`` in ``O(m n d)`` time and ``O(2**tau d + n d)`` memory.

The backward (``lsh_backward=True``) uses the same machinery:

    dV_j = lsh_cumulation with queries and keys swapped, reading g
    dQ_i = (tau/2) / m * sum_f sum_j [collide] (g_i . v_j) k_j                   (weighted cumulation)
    dK_j = (tau/2) / m * sum_f sum_i [collide] (g_i . v_j) q_i

where the weighted cumulation accumulates ``key_weight_j (x) value_j`` per bucket, one chunk of
the weight dimension at a time, so its cost is ``O(m n d^2)`` and its memory stays bounded.
With ``lsh_backward=False`` the backward is the YOSO-E surrogate (quadratic).

Shapes: codes int32 ``(bh, n, m)``; masks float ``(bh, n)`` of 0/1; values ``(bh, n, d)``.
Everything accumulates in float32 (float64 inputs in float64, for gradcheck) and returns that dtype.
"""

from __future__ import annotations

import torch

# Elements of the per-chunk bucket contributions in the reference weighted cumulation.
_WEIGHTED_CHUNK_ELEMENTS = 1 << 24


def _accumulation_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _bucket_index(codes: torch.Tensor, f: int, table_rows: int) -> torch.Tensor:
    """Flat row index ``bh * table_rows + code`` of hash ``f``: ``(bh * n,)`` int64."""
    bh, n, _ = codes.shape
    offsets = torch.arange(bh, device=codes.device, dtype=torch.int64)[:, None] * table_rows
    return (codes[:, :, f].long() + offsets).reshape(bh * n)


def lsh_cumulation(
    query_codes: torch.Tensor,
    key_codes: torch.Tensor,
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
    value: torch.Tensor,
    hash_code_len: int,
) -> torch.Tensor:
    """``out_i = mask_i/m sum_f sum_j [collide] mask_j v_j``; float32 ``(bh, n_q, d)``. Reference."""
    bh, n_k, d = value.shape
    n_q, num_hash = query_codes.shape[1], query_codes.shape[2]
    rows = 1 << hash_code_len
    acc = _accumulation_dtype(value)
    masked_value = (value.to(acc) * key_mask.to(acc)[:, :, None]).reshape(bh * n_k, d)
    out = torch.zeros(bh * n_q, d, device=value.device, dtype=acc)
    table = torch.empty(bh * rows, d, device=value.device, dtype=acc)  # one hash at a time
    for f in range(num_hash):
        table.zero_()
        table.index_add_(0, _bucket_index(key_codes, f, rows), masked_value)
        out += table[_bucket_index(query_codes, f, rows)]
    return out.reshape(bh, n_q, d) * (query_mask.to(acc)[:, :, None] / num_hash)


def lsh_weighted_cumulation(
    query_codes: torch.Tensor,
    key_codes: torch.Tensor,
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
    query_weight: torch.Tensor,
    key_weight: torch.Tensor,
    value: torch.Tensor,
    hash_code_len: int,
) -> torch.Tensor:
    """``out_i = mask_i/m sum_f sum_j [collide] mask_j (qw_i . kw_j) v_j`` ``(bh, n_q, d)``. Reference.

    ``query_weight`` ``(bh, n_q, w)``, ``key_weight`` ``(bh, n_k, w)``, ``value`` ``(bh, n_k, d)``.
    """
    bh, n_k, d = value.shape
    n_q, num_hash = query_codes.shape[1], query_codes.shape[2]
    w = key_weight.shape[-1]
    rows = 1 << hash_code_len
    chunk = max(1, min(w, _WEIGHTED_CHUNK_ELEMENTS // max(1, bh * max(n_k, rows) * d)))
    acc = _accumulation_dtype(value)
    masked_value = value.to(acc) * key_mask.to(acc)[:, :, None]
    qw, kw = query_weight.to(acc), key_weight.to(acc)
    out = torch.zeros(bh, n_q, d, device=value.device, dtype=acc)
    for start in range(0, w, chunk):
        stop = min(w, start + chunk)
        c = stop - start
        # (bh, n_k, c, d): key_weight_j[c] * value_j, flattened per key
        contrib = (kw[:, :, start:stop, None] * masked_value[:, :, None, :]).reshape(bh * n_k, c * d)
        table = torch.empty(bh * rows, c * d, device=value.device, dtype=acc)
        for f in range(num_hash):
            table.zero_()
            table.index_add_(0, _bucket_index(key_codes, f, rows), contrib)
            read = table[_bucket_index(query_codes, f, rows)].reshape(bh, n_q, c, d)
            out += torch.einsum("bnc,bncd->bnd", qw[:, :, start:stop], read)
    return out * (query_mask.to(acc)[:, :, None] / num_hash)


def lsh_backward(
    query_codes: torch.Tensor,
    key_codes: torch.Tensor,
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    grad: torch.Tensor,
    hash_code_len: int,
    *,
    cumulation=lsh_cumulation,
    weighted_cumulation=lsh_weighted_cumulation,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The LSH backward ``(grad_query, grad_key, grad_value)`` from one cumulation and two weighted ones.

    The formulas are in the module docstring. ``cumulation`` and ``weighted_cumulation`` default to
    the reference functions; a backend without a fused backward passes its own.
    """
    tau = hash_code_len
    grad_value = cumulation(key_codes, query_codes, key_mask, query_mask, grad, tau)
    grad_query = weighted_cumulation(
        query_codes,
        key_codes,
        query_mask,
        key_mask,
        grad,
        value,
        key.to(_accumulation_dtype(key)) * (tau / 2),
        tau,
    )
    grad_key = weighted_cumulation(
        key_codes,
        query_codes,
        key_mask,
        query_mask,
        value,
        grad,
        query.to(_accumulation_dtype(query)) * (tau / 2),
        tau,
    )
    return grad_query, grad_key, grad_value
