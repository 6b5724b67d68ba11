"""CUDA operators against the CPU operators and the reference, on identical inputs and codes.

Skipped where no CUDA device is present; `make gpu-check` builds the CUDA library and runs them.
"""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close_rel as close

from yoso_core.attention import yoso_attention
from yoso_core.attention.backends import REFERENCE, compiled_backend
from yoso_core.attention.hashing import draw_fast_hash_diagonals, fast_hash
from yoso_core.attention.lsh_attention import lsh_attention
from yoso_core.attention.sampled import lsh_cumulation, lsh_weighted_cumulation
from yoso_core.kernels import build

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="session")
def backends(cpu_ops):
    """The compiled CPU and CUDA backends (the CPU one from conftest's ``cpu_ops``)."""
    build.build_library("cuda")
    cuda, why_cuda = compiled_backend("cuda")
    assert cuda is not None, why_cuda
    return cpu_ops, cuda


@pytest.mark.parametrize(
    "n,d,num_hash,tau", [(1, 16, 1, 1), (97, 48, 32, 8), (1025, 64, 32, 8), (7, 256, 256, 16)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fast_hash_identical_on_cuda(backends, n, d, num_hash, tau, dtype):
    cpu, cuda = backends
    gen = torch.Generator().manual_seed(n + d)
    x = torch.randn(3, n, d, generator=gen).to(dtype)
    diagonals = draw_fast_hash_diagonals(3, d, num_hash, tau, torch.device("cpu"), gen)
    want = fast_hash(x, diagonals, num_hash, tau)
    assert torch.equal(cpu.fast_hash(x, diagonals, num_hash, tau), want)
    assert torch.equal(cuda.fast_hash(x.cuda(), diagonals.cuda(), num_hash, tau).cpu(), want)


@pytest.mark.parametrize(
    "n_q,n_k,d,num_hash,tau", [(1, 1, 16, 1, 1), (97, 90, 64, 32, 8), (1025, 1025, 64, 8, 12)]
)
def test_cumulations_on_cuda(backends, n_q, n_k, d, num_hash, tau):
    cpu, cuda = backends
    gen = torch.Generator().manual_seed(n_q)
    bh = 5
    qc = torch.randint(0, 1 << tau, (bh, n_q, num_hash), generator=gen, dtype=torch.int32)
    kc = torch.randint(0, 1 << tau, (bh, n_k, num_hash), generator=gen, dtype=torch.int32)
    qm = (torch.rand(bh, n_q, generator=gen) > 0.2).float()
    km = (torch.rand(bh, n_k, generator=gen) > 0.2).float()
    v = torch.randn(bh, n_k, d, generator=gen)
    qw, kw = torch.randn(bh, n_q, 24, generator=gen), torch.randn(bh, n_k, 24, generator=gen)
    args = (qc, kc, qm, km, v, tau)
    want = lsh_cumulation(*args)
    close(cpu.lsh_cumulation(*args), want)
    close(cuda.lsh_cumulation(*(a.cuda() if torch.is_tensor(a) else a for a in args)), want)
    wargs = (qc, kc, qm, km, qw, kw, v, tau)
    want_w = lsh_weighted_cumulation(*wargs)
    close(cpu.lsh_weighted_cumulation(*wargs), want_w)
    close(cuda.lsh_weighted_cumulation(*(a.cuda() if torch.is_tensor(a) else a for a in wargs)), want_w)


def test_gradients_on_cuda(backends):
    _, cuda = backends
    gen = torch.Generator().manual_seed(1)
    bh, n, d, num_hash, tau = 4, 200, 32, 8, 5
    q = torch.nn.functional.normalize(torch.randn(bh, n, d, generator=gen), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(bh, n, d, generator=gen), dim=-1)
    v = torch.randn(bh, n, d, generator=gen)
    mask = torch.ones(bh, n)
    mask[:, -13:] = 0
    qc = torch.randint(0, 1 << tau, (bh, n, num_hash), generator=gen, dtype=torch.int32)
    kc = torch.randint(0, 1 << tau, (bh, n, num_hash), generator=gen, dtype=torch.int32)
    grad = torch.randn(bh, n, d, generator=gen)
    results = []
    for backend, device in ((cuda, "cuda"), (REFERENCE, "cpu")):
        leaves = [t.to(device).requires_grad_() for t in (q, k, v)]
        out = lsh_attention(
            *leaves, mask.to(device), mask.to(device), qc.to(device), kc.to(device), tau, True, backend.name
        )
        out.backward(grad.to(device))
        results.append([out.detach()] + [t.grad for t in leaves])
    for got, want in zip(*results):
        close(got, want)


def test_yoso_attention_auto_uses_cuda(backends):
    q = torch.nn.functional.normalize(torch.randn(2, 4, 300, 64, device="cuda"), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(2, 4, 300, 64, device="cuda"), dim=-1)
    v = torch.randn(2, 4, 300, 64, device="cuda", dtype=torch.bfloat16)
    a = yoso_attention(q, k, v, backend="cuda", generator=torch.Generator("cuda").manual_seed(0))
    b = yoso_attention(q, k, v, backend="reference", generator=torch.Generator("cuda").manual_seed(0))
    assert a.dtype == torch.bfloat16 and a.device.type == "cuda"
    close(a.float(), b.float(), rtol=1e-2)


@pytest.mark.parametrize(
    "n_q,n_k,d,dv,num_hash,tau,buckets",
    [
        (1, 1, 16, 16, 1, 1, None),
        (97, 97, 64, 64, 32, 8, None),
        (1025, 1025, 64, 64, 8, 8, None),
        (300, 301, 64, 64, 8, 8, 3),  # three big buckets
        (40, 33, 128, 128, 8, 6, None),
        (30, 31, 24, 20, 8, 3, None),  # widths that are not a multiple of the warp
        (5, 6, 256, 256, 4, 16, None),
    ],
)
def test_lsh_backward_operator_on_cuda(backends, n_q, n_k, d, dv, num_hash, tau, buckets):
    """The CUDA lsh_backward against the CPU kernel and the reference composition, identical codes."""
    from yoso_core.attention.sampled import lsh_backward

    cpu, cuda = backends
    gen = torch.Generator().manual_seed(n_q + d)
    bh, high = 3, buckets or (1 << tau)
    qc = torch.randint(0, high, (bh, n_q, num_hash), generator=gen, dtype=torch.int32)
    kc = torch.randint(0, high, (bh, n_k, num_hash), generator=gen, dtype=torch.int32)
    qm = (torch.rand(bh, n_q, generator=gen) > 0.2).float()
    km = (torch.rand(bh, n_k, generator=gen) > 0.2).float()
    q, k = torch.randn(bh, n_q, d, generator=gen), torch.randn(bh, n_k, d, generator=gen)
    v, g = torch.randn(bh, n_k, dv, generator=gen), torch.randn(bh, n_q, dv, generator=gen)
    args = (qc, kc, qm, km, q, k, v, g)
    want = lsh_backward(*args, tau)
    got_cuda = cuda.lsh_backward(*(a.cuda() for a in args), tau)
    for a, b, c in zip(got_cuda, cpu.lsh_backward(*args, tau), want):
        assert a.device.type == "cuda" and a.dtype == torch.float32 and a.shape == c.shape
        close(a, c)
        close(b, c)


def test_lsh_backward_opcheck_on_cuda(backends):
    gen = torch.Generator().manual_seed(3)
    qc = torch.randint(0, 16, (2, 9, 4), generator=gen, dtype=torch.int32)
    kc = torch.randint(0, 16, (2, 11, 4), generator=gen, dtype=torch.int32)
    qm, km = torch.ones(2, 9), torch.ones(2, 11)
    q, k = torch.randn(2, 9, 16, generator=gen), torch.randn(2, 11, 16, generator=gen)
    v, g = torch.randn(2, 11, 16, generator=gen), torch.randn(2, 9, 16, generator=gen)
    args = tuple(a.cuda() for a in (qc, kc, qm, km, q, k, v, g))
    torch.library.opcheck(torch.ops.yoso.lsh_backward.default, (*args, 4))


def test_cuda_backend_uses_the_fused_backward(backends):
    """The CUDA backend runs the lsh_backward operator, not a composition of cumulations."""
    from yoso_core.attention import ops

    _, cuda = backends
    assert cuda.lsh_backward is ops.lsh_backward
