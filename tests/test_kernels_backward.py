"""The compiled CPU LSH backward (all three gradients in one pass) against the reference composition.

The reference computes the same gradients with one cumulation and two weighted cumulations
(``sampled.lsh_backward``); on identical codes the fused kernel must agree within 1e-5 relative in
both of its per-bucket forms (pairwise dot products and the table form), with masks, tails and
every thread split.
"""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close_rel as close

from yoso_core.attention import ops
from yoso_core.attention.sampled import lsh_backward


def inputs(bh, n_q, n_k, d, dv, num_hash, tau, seed, buckets=None, dtype=torch.float32):
    """Codes (uniform, or from ``buckets`` codes only), padded masks, q, k, v, grad."""
    gen = torch.Generator().manual_seed(seed)
    high = buckets if buckets is not None else 1 << tau
    qc = torch.randint(0, high, (bh, n_q, num_hash), generator=gen, dtype=torch.int32)
    kc = torch.randint(0, high, (bh, n_k, num_hash), generator=gen, dtype=torch.int32)
    qm = (torch.rand(bh, n_q, generator=gen) > 0.2).float()
    km = (torch.rand(bh, n_k, generator=gen) > 0.2).float()
    qm[:, 0] = km[:, 0] = 1.0
    q = torch.randn(bh, n_q, d, generator=gen).to(dtype)
    k = torch.randn(bh, n_k, d, generator=gen).to(dtype)
    v = torch.randn(bh, n_k, dv, generator=gen).to(dtype)
    g = torch.randn(bh, n_q, dv, generator=gen).to(dtype)
    return qc, kc, qm, km, q, k, v, g


def check(backend, args, tau):
    got = backend.lsh_backward(*args, tau)
    want = lsh_backward(*args, tau)
    for name, a, b in zip(("grad_query", "grad_key", "grad_value"), got, want):
        assert a.dtype == torch.float32 and a.shape == b.shape, name
        close(a, b.float())
    return got


@pytest.mark.parametrize(
    "n_q,n_k,d,dv,num_hash,tau,buckets",
    [
        (1, 1, 16, 16, 1, 1, None),
        (7, 9, 48, 48, 32, 8, None),
        (97, 97, 64, 64, 32, 8, None),  # the specialised d = dv = 64 kernel, small buckets
        (300, 301, 64, 64, 8, 8, 3),  # three big buckets: the table form
        (1025, 1025, 64, 64, 4, 12, None),
        (33, 40, 32, 32, 16, 4, None),
        (40, 33, 128, 128, 8, 6, None),
        (5, 6, 256, 256, 4, 10, None),
        (30, 31, 32, 48, 8, 3, None),  # value dim differs from head dim
        (6, 5, 16, 16, 16, 16, None),
    ],
)
def test_fused_backward_matches_reference(cpu_ops, n_q, n_k, d, dv, num_hash, tau, buckets):
    args = inputs(3, n_q, n_k, d, dv, num_hash, tau, seed=n_q * 7 + d, buckets=buckets)
    check(cpu_ops, args, tau)


def test_both_bucket_forms_are_exact(cpu_ops):
    """One bucket holding everything takes the table form, singletons the pairwise form."""
    bh, n, d, tau = 2, 200, 64, 9
    qc, kc, qm, km, q, k, v, g = inputs(bh, n, n, d, d, 2, tau, seed=11)
    for codes in (
        torch.zeros(bh, n, 2, dtype=torch.int32),
        torch.arange(n, dtype=torch.int32)[None, :, None],
    ):
        codes = codes.expand(bh, n, 2).contiguous()
        got = check(cpu_ops, (codes, codes, qm, km, q, k, v, g), tau)
        assert got[0].abs().sum() > 0


def test_masked_rows_get_zero_gradients(cpu_ops):
    qc, kc, qm, km, q, k, v, g = inputs(2, 50, 60, 32, 32, 8, 3, seed=12)
    grad_query, grad_key, grad_value = cpu_ops.lsh_backward(qc, kc, qm, km, q, k, v, g, 3)
    assert torch.all(grad_query[qm == 0] == 0)
    assert torch.all(grad_key[km == 0] == 0) and torch.all(grad_value[km == 0] == 0)
    assert grad_query[qm == 1].abs().sum() > 0 and grad_value[km == 1].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs(cpu_ops, dtype):
    check(cpu_ops, inputs(2, 40, 40, 32, 32, 8, 4, seed=13, dtype=dtype), 4)


@pytest.mark.parametrize("bh", [1, 130])
def test_thread_splits(cpu_ops, bh):
    """bh = 1 splits the hashes over threads (summed at the end); bh = 130 gives threads many heads."""
    check(cpu_ops, inputs(bh, 40, 41, 16, 16, 16, 5, seed=bh), 5)


def test_opcheck(cpu_ops):
    args = inputs(2, 9, 11, 16, 16, 4, 4, seed=14)
    torch.library.opcheck(torch.ops.yoso.lsh_backward.default, (*args, 4))


def test_mismatched_grad_is_named(cpu_ops):
    qc, kc, qm, km, q, k, v, g = inputs(2, 9, 11, 16, 16, 4, 4, seed=15)
    with pytest.raises(RuntimeError, match="grad must have shape"):
        ops.lsh_backward(qc, kc, qm, km, q, k, v, g[:, :5], 4)


@pytest.mark.parametrize("n", [1, 97, 1025])
@pytest.mark.parametrize("d", [8, 16, 24, 32, 48, 64, 96, 128, 256])
def test_tails_and_every_head_dim(cpu_ops, n, d):
    """Sequence tails (1, 97, 1025) at every head dim: whole and partial 16-float vectors, and the
    plain-loop widths that are not a multiple of 16; tau 8 gives small buckets (pairwise form)."""
    args = inputs(2, n, n, d, d, 4, 8, seed=n + d)
    check(cpu_ops, args, 8)


@pytest.mark.parametrize("n", [97, 1025])
def test_both_forms_at_every_block_shape(cpu_ops, n):
    """Buckets of every size from 1 to hundreds: every register-block shape (rows 1-8, 1-4 vectors)
    and both bucket forms in one call."""
    bh, d, tau = 2, 64, 6
    qc, kc, qm, km, q, k, v, g = inputs(bh, n, n, d, d, 3, tau, seed=n)
    # bucket c holds about c tokens: sizes 1, 2, 3, ... up to the sequence length
    sizes = torch.arange(1, n + 1)
    codes = (torch.searchsorted(sizes.cumsum(0), torch.arange(n), right=True) % (1 << tau)).to(torch.int32)
    codes = codes[None, :, None].expand(bh, n, 3).contiguous()
    check(cpu_ops, (codes, codes.flip(1).contiguous(), qm, km, q, k, v, g), tau)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_rows_are_widened_exactly(cpu_ops, dtype):
    """bfloat16 / float16 rows are widened to float32 as they are gathered (no rounding of their
    own): the gradients equal the float32 reference on the same rows within 1e-5 relative."""
    args = inputs(3, 300, 301, 64, 64, 8, 6, seed=21, dtype=dtype)
    got = cpu_ops.lsh_backward(*args, 6)
    widened = tuple(a.float() if a.is_floating_point() else a for a in args)
    for a, b in zip(got, lsh_backward(*widened, 6)):
        close(a, b)
