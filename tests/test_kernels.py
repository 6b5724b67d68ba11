"""The compiled CPU operators against the pure-PyTorch reference, on identical inputs and hash codes.

Codes must be identical; cumulations and their gradients within 1e-5 relative (float32, both
accumulate in float32 in different orders). Inputs have tails (seq 1, 7, 97, 1025; head_dim 16 to
256, not only powers of two) and padded masks. The library is built once per test session into the
kernel cache (a cache hit after the first run).
"""

from __future__ import annotations

import pytest
import torch
from helpers import TINY, assert_close_rel

from yoso_core import YosoConfig, YosoModel
from yoso_core.attention import backends as backends_module
from yoso_core.attention import hash_codes, ops, yoso_attention
from yoso_core.attention.backends import REFERENCE, compiled_backend, resolve_backend
from yoso_core.attention.hashing import draw_fast_hash_diagonals, fast_hash
from yoso_core.attention.lsh_attention import lsh_attention
from yoso_core.attention.sampled import lsh_cumulation, lsh_weighted_cumulation


def random_codes(bh, n, num_hash, tau, gen, skew=False):
    """Uniform codes, or (skew) codes from few buckets so that buckets are large."""
    high = min(1 << tau, 3) if skew else 1 << tau
    return torch.randint(0, high, (bh, n, num_hash), generator=gen, dtype=torch.int32)


def padded_mask(bh, n, gen):
    mask = (torch.rand(bh, n, generator=gen) > 0.25).float()
    mask[:, -1] = 0.0  # a padded tail
    mask[:, 0] = 1.0
    return mask


# ---------------------------------------------------------------------------------------------- fast hash


@pytest.mark.parametrize(
    "n,d,num_hash,tau",
    [(1, 16, 1, 1), (7, 48, 32, 8), (97, 64, 32, 8), (1025, 64, 16, 8), (5, 256, 256, 16), (9, 20, 7, 13)],
)
def test_fast_hash_codes_identical(cpu_ops, n, d, num_hash, tau):
    gen = torch.Generator().manual_seed(n * d + tau)
    x = torch.randn(3, n, d, generator=gen)
    diagonals = draw_fast_hash_diagonals(3, d, num_hash, tau, torch.device("cpu"), gen)
    codes = cpu_ops.fast_hash(x, diagonals, num_hash, tau)
    assert codes.dtype == torch.int32 and codes.shape == (3, n, num_hash)
    assert torch.equal(codes, fast_hash(x, diagonals, num_hash, tau))


def test_fast_hash_every_code_length_and_dtype(cpu_ops):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 33, 40, generator=gen)
    for tau in range(1, 17):
        diagonals = draw_fast_hash_diagonals(2, 40, 9, tau, torch.device("cpu"), gen)
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            xd = x.to(dtype)
            got = cpu_ops.fast_hash(xd, diagonals, 9, tau)
            assert torch.equal(got, fast_hash(xd, diagonals, 9, tau)), (tau, dtype)
            assert int(got.max()) < 1 << tau and int(got.min()) >= 0


def test_fast_hash_uses_every_bit(cpu_ops):
    """All 2^tau codes occur for many random vectors: no bit is stuck."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 4096, 64, generator=gen)
    diagonals = draw_fast_hash_diagonals(1, 64, 4, 4, torch.device("cpu"), gen)
    codes = cpu_ops.fast_hash(x, diagonals, 4, 4)
    assert torch.unique(codes).numel() == 16


# ---------------------------------------------------------------------------------------------- cumulation


@pytest.mark.parametrize(
    "n_q,n_k,d,num_hash,tau,w,skew",
    [
        (1, 1, 16, 1, 1, 24, False),
        (7, 9, 48, 32, 8, 24, False),
        (97, 97, 64, 32, 8, 24, True),
        (1025, 1025, 64, 4, 12, 24, False),
        (5, 6, 256, 8, 10, 24, False),
        (5, 6, 32, 4, 16, 3, False),
        (6, 5, 16, 64, 4, 2, False),
    ],
)
def test_cumulations_match_reference(cpu_ops, n_q, n_k, d, num_hash, tau, w, skew):
    gen = torch.Generator().manual_seed(n_q + d)
    bh = 3
    qc, kc = random_codes(bh, n_q, num_hash, tau, gen, skew), random_codes(bh, n_k, num_hash, tau, gen, skew)
    qm, km = padded_mask(bh, n_q, gen), padded_mask(bh, n_k, gen)
    value = torch.randn(bh, n_k, d, generator=gen)
    out = cpu_ops.lsh_cumulation(qc, kc, qm, km, value, tau)
    assert out.dtype == torch.float32 and out.shape == (bh, n_q, d)
    assert_close_rel(out, lsh_cumulation(qc, kc, qm, km, value, tau))
    assert torch.all(out[qm == 0] == 0)
    qw, kw = torch.randn(bh, n_q, w, generator=gen), torch.randn(bh, n_k, w, generator=gen)
    weighted = cpu_ops.lsh_weighted_cumulation(qc, kc, qm, km, qw, kw, value, tau)
    assert_close_rel(weighted, lsh_weighted_cumulation(qc, kc, qm, km, qw, kw, value, tau))


def test_weighted_cumulation_table_and_pairwise_forms(cpu_ops):
    """One big bucket takes the (w x d) table form, singleton buckets the pairwise form: both exact."""
    gen = torch.Generator().manual_seed(3)
    bh, n, d, w = 2, 300, 32, 16
    qw, kw = torch.randn(bh, n, w, generator=gen), torch.randn(bh, n, w, generator=gen)
    value = torch.randn(bh, n, d, generator=gen)
    mask = torch.ones(bh, n)
    for codes in (
        torch.zeros(bh, n, 2, dtype=torch.int32),
        torch.arange(n, dtype=torch.int32).expand(bh, 2, n),
    ):
        codes = codes.transpose(1, 2).contiguous() if codes.shape[1] == 2 else codes
        got = cpu_ops.lsh_weighted_cumulation(codes, codes, mask, mask, qw, kw, value, 9)
        assert_close_rel(got, lsh_weighted_cumulation(codes, codes, mask, mask, qw, kw, value, 9))


@pytest.mark.parametrize("width", [32, 64, 128])
def test_weighted_cumulation_fixed_width_kernels(cpu_ops, width):
    """The backward's shapes (weight dim = value dim = head_dim) take specialised kernels: still exact."""
    gen = torch.Generator().manual_seed(width)
    bh, n, tau = 2, 200, 4
    qc, kc = random_codes(bh, n, 4, tau, gen), random_codes(bh, n + 5, 4, tau, gen)
    qm, km = padded_mask(bh, n, gen), padded_mask(bh, n + 5, gen)
    qw, kw = torch.randn(bh, n, width, generator=gen), torch.randn(bh, n + 5, width, generator=gen)
    value = torch.randn(bh, n + 5, width, generator=gen)
    got = cpu_ops.lsh_weighted_cumulation(qc, kc, qm, km, qw, kw, value, tau)
    assert_close_rel(got, lsh_weighted_cumulation(qc, kc, qm, km, qw, kw, value, tau))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_accumulate_in_float32(cpu_ops, dtype):
    gen = torch.Generator().manual_seed(4)
    qc, kc = random_codes(2, 50, 8, 4, gen), random_codes(2, 50, 8, 4, gen)
    mask = torch.ones(2, 50)
    value = torch.randn(2, 50, 32, generator=gen).to(dtype)
    out = cpu_ops.lsh_cumulation(qc, kc, mask, mask, value, 4)
    assert out.dtype == torch.float32
    assert_close_rel(out, lsh_cumulation(qc, kc, mask, mask, value, 4))
    qw, kw = torch.randn(2, 50, 8, generator=gen).to(dtype), torch.randn(2, 50, 8, generator=gen).to(dtype)
    weighted = cpu_ops.lsh_weighted_cumulation(qc, kc, mask, mask, qw, kw, value, 4)
    assert_close_rel(weighted, lsh_weighted_cumulation(qc, kc, mask, mask, qw, kw, value, 4))


def test_large_batch_heads_and_one_head(cpu_ops):
    """bh = 1 splits the hashes over threads; bh = 130 gives each thread many heads: both exact."""
    gen = torch.Generator().manual_seed(5)
    for bh in (1, 130):
        qc, kc = random_codes(bh, 40, 16, 5, gen), random_codes(bh, 40, 16, 5, gen)
        qm, km = padded_mask(bh, 40, gen), padded_mask(bh, 40, gen)
        value = torch.randn(bh, 40, 16, generator=gen)
        assert_close_rel(
            cpu_ops.lsh_cumulation(qc, kc, qm, km, value, 5), lsh_cumulation(qc, kc, qm, km, value, 5)
        )


# ---------------------------------------------------------------------------------------------- gradients


def test_lsh_backward_gradients_match_reference(cpu_ops):
    gen = torch.Generator().manual_seed(6)
    bh, n, d, num_hash, tau = 4, 97, 32, 8, 4
    q = torch.nn.functional.normalize(torch.randn(bh, n, d, generator=gen), dim=-1)
    k = torch.nn.functional.normalize(q + 0.5 * torch.randn(bh, n, d, generator=gen), dim=-1)
    v = torch.randn(bh, n, d, generator=gen)
    mask = padded_mask(bh, n, gen)
    qc, kc = random_codes(bh, n, num_hash, tau, gen), random_codes(bh, n, num_hash, tau, gen)
    grad = torch.randn(bh, n, d, generator=gen)
    results = []
    for backend in (cpu_ops, REFERENCE):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = lsh_attention(qq, kk, vv, mask, mask, qc, kc, tau, True, backend.name)
        out.backward(grad)
        results.append((out.detach(), qq.grad, kk.grad, vv.grad))
    for got, want in zip(results[0], results[1]):
        assert_close_rel(got, want)
    assert results[0][1].abs().sum() > 0  # the gradient is not trivially zero


# ---------------------------------------------------------------------------------------------- opcheck


def test_opcheck(cpu_ops):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 11, 24, generator=gen)
    diagonals = draw_fast_hash_diagonals(2, 24, 8, 6, torch.device("cpu"), gen)
    torch.library.opcheck(torch.ops.yoso.fast_hash.default, (x, diagonals, 8, 6))
    qc, kc = random_codes(2, 11, 8, 6, gen), random_codes(2, 13, 8, 6, gen)
    qm, km = padded_mask(2, 11, gen), padded_mask(2, 13, gen)
    value = torch.randn(2, 13, 16, generator=gen)
    torch.library.opcheck(torch.ops.yoso.lsh_cumulation.default, (qc, kc, qm, km, value, 6))
    qw, kw = torch.randn(2, 11, 5, generator=gen), torch.randn(2, 13, 5, generator=gen)
    torch.library.opcheck(torch.ops.yoso.lsh_weighted_cumulation.default, (qc, kc, qm, km, qw, kw, value, 6))


@pytest.mark.parametrize("lsh_backward", [True, False])
def test_lsh_attention_opcheck_on_the_compiled_backend(cpu_ops, lsh_backward):
    """The differentiable operator over the compiled kernels: fake, autograd and traced backward."""
    gen = torch.Generator().manual_seed(8)
    q = torch.nn.functional.normalize(torch.randn(2, 11, 16, generator=gen), dim=-1).requires_grad_()
    k = torch.nn.functional.normalize(torch.randn(2, 13, 16, generator=gen), dim=-1).requires_grad_()
    v = torch.randn(2, 13, 16, generator=gen, requires_grad=True)
    qc, kc = random_codes(2, 11, 8, 5, gen), random_codes(2, 13, 8, 5, gen)
    qm, km = padded_mask(2, 11, gen), padded_mask(2, 13, gen)
    torch.library.opcheck(
        torch.ops.yoso.lsh_attention.default, (q, k, v, qm, km, qc, kc, 5, lsh_backward, "cpu")
    )


def test_sampled_training_step_compiles_without_graph_breaks(cpu_ops):
    """``torch.compile(fullgraph=True)`` traces the sampled forward and its LSH backward."""
    gen = torch.Generator().manual_seed(9)
    q = torch.nn.functional.normalize(torch.randn(2, 40, 16, generator=gen), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(2, 40, 16, generator=gen), dim=-1)
    v = torch.randn(2, 40, 16, generator=gen)
    qc, kc = random_codes(2, 40, 8, 4, gen), random_codes(2, 40, 8, 4, gen)
    mask = padded_mask(2, 40, gen)

    def step(query, key, value):
        return (lsh_attention(query, key, value, mask, mask, qc, kc, 4, True, "cpu") ** 2).sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    grads = []
    for fn in (step, compiled):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        fn(*leaves).backward()
        grads.append([t.grad for t in leaves])
    for got, want in zip(grads[1], grads[0]):
        assert_close_rel(got, want)


# ---------------------------------------------------------------------------------------------- errors


def test_checks_name_the_tensor(cpu_ops):
    mask = torch.ones(1, 4)
    value = torch.randn(1, 4, 8)
    codes = torch.zeros(1, 4, 2, dtype=torch.int32)
    with pytest.raises(RuntimeError, match=r"key_codes must lie in \[0, 16\) for hash_code_len 4, got 16"):
        cpu_ops.lsh_cumulation(codes, codes + 16, mask, mask, value, 4)
    with pytest.raises(RuntimeError, match="query_codes must be int32, got Long"):
        cpu_ops.lsh_cumulation(codes.long(), codes, mask, mask, value, 4)
    with pytest.raises(RuntimeError, match=r"value must have shape \(1, 4, head_dim\)"):
        cpu_ops.lsh_cumulation(codes, codes, mask, mask, torch.randn(1, 5, 8), 4)
    with pytest.raises(RuntimeError, match=r"hash_code_len must be in \[1, 16\], got 17"):
        cpu_ops.lsh_cumulation(codes, codes, mask, mask, value, 17)
    diagonals = draw_fast_hash_diagonals(1, 8, 2, 4, torch.device("cpu"))
    with pytest.raises(RuntimeError, match="diagonals must have shape"):
        cpu_ops.fast_hash(torch.randn(1, 4, 20), diagonals, 2, 4)


def test_every_operator_rejects_a_code_out_of_range_even_where_masked(cpu_ops):
    """One range check before the kernels: a negative code of a masked query is still refused."""
    qm, km = torch.ones(1, 4), torch.ones(1, 5)
    qm[0, 2] = 0.0
    qc, kc = torch.zeros(1, 4, 2, dtype=torch.int32), torch.zeros(1, 5, 2, dtype=torch.int32)
    qc[0, 2, 1] = -3
    q, k, v, g = torch.randn(1, 4, 8), torch.randn(1, 5, 8), torch.randn(1, 5, 8), torch.randn(1, 4, 8)
    calls = {
        "lsh_cumulation": lambda: cpu_ops.lsh_cumulation(qc, kc, qm, km, v, 4),
        "lsh_weighted_cumulation": lambda: cpu_ops.lsh_weighted_cumulation(qc, kc, qm, km, q, k, v, 4),
        "lsh_backward": lambda: cpu_ops.lsh_backward(qc, kc, qm, km, q, k, v, g, 4),
    }
    for call in calls.values():
        with pytest.raises(
            RuntimeError, match=r"query_codes must lie in \[0, 16\) for hash_code_len 4, got -3"
        ):
            call()


def test_unbuilt_backend_says_how_to_build(monkeypatch, tmp_path, cpu_ops):
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr(ops, "_status", {})
    backend, why = compiled_backend("cpu")
    assert backend is None and "yoso build-kernels" in why and str(tmp_path) in why
    with pytest.raises(RuntimeError, match="yoso build-kernels"):
        resolve_backend("cpu", torch.device("cpu"))
    monkeypatch.setattr(backends_module, "_warned_fallback", False)
    with pytest.warns(UserWarning, match="yoso build-kernels"):
        assert resolve_backend("auto", torch.device("cpu")) is REFERENCE


# ---------------------------------------------------------------------------------------------- end to end


def test_yoso_attention_cpu_equals_reference(cpu_ops):
    gen = torch.Generator().manual_seed(8)
    q = torch.nn.functional.normalize(torch.randn(2, 3, 97, 48, generator=gen), dim=-1)
    k = torch.nn.functional.normalize(q + 0.6 * torch.randn(2, 3, 97, 48, generator=gen), dim=-1)
    v = torch.randn(2, 3, 97, 48, generator=gen)
    mask = torch.ones(2, 97)
    mask[1, 60:] = 0
    outs = {}
    for name in ("cpu", "reference"):
        codes = hash_codes(
            q, k, 16, 6, backend=resolve_backend(name, q.device), generator=torch.Generator().manual_seed(1)
        )
        outs[name] = yoso_attention(
            q,
            k,
            v,
            mask,
            num_hash=16,
            hash_code_len=6,
            backend=name,
            generator=torch.Generator().manual_seed(1),
        )
        outs[name + "_codes"] = codes
    assert torch.equal(outs["cpu_codes"][0], outs["reference_codes"][0])
    assert torch.equal(outs["cpu_codes"][1], outs["reference_codes"][1])
    assert_close_rel(outs["cpu"], outs["reference"])
    assert resolve_backend("auto", q.device).name == "cpu"


def _tiny_sampled_model() -> YosoModel:
    config = YosoConfig(
        **{**TINY, "max_position_embeddings": 80},
        use_expectation=False,
        num_hash=8,
        hash_code_len=5,
    )
    torch.manual_seed(0)
    return YosoModel(config)


def test_sampled_model_forward_backward_through_cpu_kernel(cpu_ops):
    model = _tiny_sampled_model()
    ids = torch.randint(0, 99, (2, 37), generator=torch.Generator().manual_seed(9))
    attention_mask = torch.ones(2, 37, dtype=torch.long)
    attention_mask[1, 25:] = 0
    results = {}
    for backend in ("cpu", "reference"):
        model.set_attention_backend(backend)
        model.zero_grad()
        torch.manual_seed(3)  # the same hash functions for both backends
        out = model(input_ids=ids, attention_mask=attention_mask).last_hidden_state
        (out * attention_mask[..., None]).pow(2).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[backend] = (out.detach(), grads)
    assert_close_rel(results["cpu"][0], results["reference"][0], rtol=1e-4)
    assert results["cpu"][1].keys() == results["reference"][1].keys()
    for name, grad in results["reference"][1].items():
        assert_close_rel(results["cpu"][1][name], grad, rtol=1e-4)


@pytest.mark.slow
def test_torch_compile_traces_attention_through_the_ops(cpu_ops):
    """torch.compile runs forward and backward through the registered operators (their fakes)."""
    q = torch.nn.functional.normalize(torch.randn(1, 2, 33, 16), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(1, 2, 33, 16), dim=-1)

    def loss(v):
        return yoso_attention(q, k, v, num_hash=4, hash_code_len=4, backend="cpu").pow(2).sum()

    v1 = torch.randn(1, 2, 33, 16, requires_grad=True)
    v2 = v1.detach().clone().requires_grad_()
    torch.manual_seed(0)
    compiled = torch.compile(loss)(v1)
    compiled.backward()
    torch.manual_seed(0)
    eager = loss(v2)
    eager.backward()
    assert_close_rel(compiled.detach(), eager.detach(), rtol=1e-4)
    assert_close_rel(v1.grad, v2.grad, rtol=1e-4)


def test_bfloat16_attention_within_bfloat16_rounding_of_float32(cpu_ops):
    """bfloat16 q, k, v through the CPU kernels against the float32 reference on the same rows:
    codes identical, accumulation float32, so forward and gradients differ from it only by the
    final rounding to bfloat16 (at most 2^-8 of the largest entry; measured about 2^-9)."""
    gen = torch.Generator().manual_seed(10)
    q = torch.nn.functional.normalize(torch.randn(1, 2, 300, 64, generator=gen), dim=-1).bfloat16()
    k = torch.nn.functional.normalize(torch.randn(1, 2, 300, 64, generator=gen), dim=-1).bfloat16()
    v = torch.randn(1, 2, 300, 64, generator=gen).bfloat16()
    g = torch.randn(1, 2, 300, 64, generator=gen)
    results = {}
    for name, dtype in (("cpu", torch.bfloat16), ("reference", torch.float32)):
        leaves = [t.detach().to(dtype).clone().requires_grad_() for t in (q, k, v)]
        out = yoso_attention(
            *leaves, num_hash=16, hash_code_len=6, backend=name, generator=torch.Generator().manual_seed(2)
        )
        out.backward(g.to(dtype))
        assert out.dtype == dtype
        results[name] = [out.detach().float(), *(t.grad.float() for t in leaves)]
    for got, want in zip(results["cpu"], results["reference"]):
        scale = want.abs().max().item()
        assert scale > 0
        assert (got - want).abs().max().item() <= 2**-8 * scale
