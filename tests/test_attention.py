"""The reference attention: exactness of YOSO-E, sampled YOSO as a statistic, gradients, input checks.

Sampled YOSO is tested as an estimator: identical output for an identical generator, collision
rates against (1 - theta/pi)^tau within binomial bounds (5 sigma: strict enough to catch a wrong
bit, loose enough never to flake), averages approaching YOSO-E.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from yoso_core.attention import hash_codes, yoso_attention
from yoso_core.attention.expectation import expectation_weights
from yoso_core.attention.hashing import (
    draw_fast_hash_diagonals,
    fast_hash,
    hadamard_matrix,
    hadamard_transform,
    pack_bits,
    padded_dim,
)
from yoso_core.attention.lsh_attention import lsh_attention
from yoso_core.attention.sampled import lsh_cumulation, lsh_weighted_cumulation


def unit(*shape, gen=None):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=-1)


def related_qkv(b=1, h=4, n=64, d=32, noise=0.7, seed=0):
    """Keys near their queries so collision probabilities span a useful range."""
    gen = torch.Generator().manual_seed(seed)
    q = unit(b, h, n, d, gen=gen)
    k = torch.nn.functional.normalize(q + noise * torch.randn(b, h, n, d, generator=gen), dim=-1)
    v = torch.randn(b, h, n, d, generator=gen)
    return q, k, v


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def pair_at_angle(d: int, theta: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    rot, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
    q = torch.zeros(d)
    k = torch.zeros(d)
    q[0], k[0], k[1] = 1.0, math.cos(theta), math.sin(theta)
    return q @ rot, k @ rot


def collision_rate(q, k, tau, fast, seeds=8, heads=64, num_hash=256):
    """Empirical collision rate of one (q, k) pair over seeds*heads*num_hash independent hashes."""
    d = q.shape[-1]
    big_q = q.expand(1, heads, 1, d).contiguous()
    big_k = k.expand(1, heads, 1, d).contiguous()
    hits = total = 0
    for s in range(seeds):
        qc, kc = hash_codes(
            big_q, big_k, num_hash, tau, fast_hash=fast, generator=torch.Generator().manual_seed(s)
        )
        hits += (qc == kc).sum().item()
        total += qc.numel()
    return hits / total, total


# ---------------------------------------------------------------------------------------------- YOSO-E


def test_expectation_equals_dense_formula():
    q, k, v = related_qkv(b=2, h=3, n=17, d=16)
    mask = torch.ones(2, 17)
    mask[1, 11:] = 0
    out = yoso_attention(q, k, v, mask, expectation=True, hash_code_len=5)
    weights = (1 - torch.acos((q @ k.transpose(-1, -2)).clamp(-1, 1)) / math.pi) ** 5
    weights = weights * mask[:, None, :, None] * mask[:, None, None, :]
    torch.testing.assert_close(out, weights @ v, rtol=1e-5, atol=1e-6)
    assert torch.all(out[1, :, 11:] == 0)


def test_expectation_backward_is_the_surrogate():
    q, k, v = related_qkv(b=1, h=2, n=12, d=8)
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    g = torch.randn(1, 2, 12, 8)
    tau = 6
    (yoso_attention(q, k, v, expectation=True, hash_code_len=tau) * g).sum().backward()
    a = (1 - torch.acos((q @ k.transpose(-1, -2)).clamp(-1, 1)) / math.pi).detach() ** tau
    weighted = (g @ v.detach().transpose(-1, -2)) * a
    torch.testing.assert_close(q.grad, tau / 2 * weighted @ k.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        k.grad, tau / 2 * weighted.transpose(-1, -2) @ q.detach(), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(v.grad, a.transpose(-1, -2) @ g, rtol=1e-5, atol=1e-6)


def test_expectation_clamps_rounding_above_one():
    x = torch.nn.functional.normalize(torch.full((1, 1, 4, 3), 0.3), dim=-1) * (1 + 1e-6)
    w = expectation_weights(x[0], x[0], torch.ones(1, 4), torch.ones(1, 4), 8)
    assert torch.isfinite(w).all() and torch.allclose(w, torch.ones_like(w))


# ---------------------------------------------------------------------------------------------- hashing


def test_hadamard_butterflies_equal_the_dense_matrix():
    x = torch.randn(5, 64, dtype=torch.float64)
    torch.testing.assert_close(hadamard_transform(x), x @ hadamard_matrix(64))


@pytest.mark.parametrize("d, num_hash, tau", [(64, 8, 8), (48, 5, 7), (16, 20, 9), (7, 3, 4)])
def test_fast_hash_equals_dense_rotation(d, num_hash, tau):
    # small-integer inputs keep every butterfly sum exact, so signs cannot differ by rounding
    x = torch.randint(-8, 9, (3, 11, d)).float()
    diag = draw_fast_hash_diagonals(3, d, num_hash, tau, "cpu", torch.Generator().manual_seed(1))
    p = padded_dim(d)
    h = hadamard_matrix(p)
    x_pad = torch.nn.functional.pad(x.double(), (0, p - d))
    coords = []
    for r in range(diag.shape[1]):
        d1, d2, d3 = (torch.diag_embed(diag[:, r, i].double()) for i in range(3))
        rotation = d1 @ h @ d2 @ h @ d3 @ h  # rows act on row vectors: x D1 H D2 H D3 H
        coords.append(x_pad @ rotation)
    expected = pack_bits(torch.cat(coords, dim=-1), num_hash, tau)
    assert torch.equal(fast_hash(x, diag, num_hash, tau), expected)


def test_codes_are_in_range_and_bits_follow_signs():
    x = torch.randn(2, 9, 32)
    proj = torch.randn(2, 32, 4 * 6)
    from yoso_core.attention.hashing import simhash

    codes = simhash(x, proj, 4, 6)
    assert codes.dtype == torch.int32 and codes.shape == (2, 9, 4)
    assert codes.min() >= 0 and codes.max() < 2**6
    signs = (x @ proj > 0).reshape(2, 9, 4, 6)
    for b in range(6):
        assert torch.equal((codes >> b) & 1, signs[..., b].int())


@pytest.mark.parametrize("tau", [4, 8])
@pytest.mark.parametrize("theta", [0.3, 0.8, 1.3])
def test_simhash_collision_rate_matches_theory(theta, tau):
    q, k = pair_at_angle(64, theta)
    rate, trials = collision_rate(q, k, tau, fast=False)
    p = (1 - theta / math.pi) ** tau
    assert abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / trials) + 1e-4, (rate, p)


@pytest.mark.parametrize("tau", [4, 8])
@pytest.mark.parametrize("theta", [0.3, 0.8, 1.3])
def test_fast_hash_collisions_equal_orthogonal_directions(theta, tau):
    """The fast hash's bias is that of tau exactly orthogonal random directions, and small.

    Within one hash function the tau bits come from orthogonal rows of one rotation, not from
    independent Gaussians; orthogonal directions repel, so all tau signs agree a little less often
    than (1 - theta/pi)^tau. We check that the fast hash matches Haar-random orthonormal directions
    (so the structured rotation adds no bias of its own) and that this deficit stays under 20% of p
    at d = 64, tau <= 8, theta <= 1.3 (measured: at most about 12%, at tau = 8 and theta = 1.3).
    """
    d = 64
    q, k = pair_at_angle(d, theta)
    fast, trials = collision_rate(q, k, tau, fast=True)
    gen = torch.Generator().manual_seed(123)
    per_rotation = d // tau
    rotations = trials // per_rotation
    haar, _ = torch.linalg.qr(torch.randn(rotations, d, d, generator=gen))  # orthonormal columns
    haar_rate = (
        (pack_bits(q @ haar, per_rotation, tau) == pack_bits(k @ haar, per_rotation, tau)).float().mean()
    )
    p = (1 - theta / math.pi) ** tau
    sigma = math.sqrt(2 * p * (1 - p) / trials)
    assert abs(fast - haar_rate.item()) <= 5 * sigma + 1e-4, (fast, haar_rate.item())
    assert 0.8 * p - 5 * sigma <= fast <= p + 5 * sigma, (fast, p)


# ---------------------------------------------------------------------------------------------- sampled


def test_same_generator_same_output_and_global_seed():
    q, k, v = related_qkv()
    a = yoso_attention(q, k, v, generator=torch.Generator().manual_seed(5), backend="reference")
    b = yoso_attention(q, k, v, generator=torch.Generator().manual_seed(5), backend="reference")
    c = yoso_attention(q, k, v, generator=torch.Generator().manual_seed(6), backend="reference")
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(9)
    d = yoso_attention(q, k, v, backend="reference")
    torch.manual_seed(9)
    assert torch.equal(d, yoso_attention(q, k, v, backend="reference"))


@pytest.mark.parametrize("fast", [False, True])
def test_error_shrinks_as_one_over_sqrt_num_hash(fast):
    q, k, v = related_qkv(n=48)
    exact = yoso_attention(q, k, v, expectation=True, hash_code_len=4)

    def mean_err(m):
        return (
            sum(
                rel_err(
                    yoso_attention(
                        q,
                        k,
                        v,
                        num_hash=m,
                        hash_code_len=4,
                        fast_hash=fast,
                        backend="reference",
                        generator=torch.Generator().manual_seed(s),
                    ),
                    exact,
                )
                for s in range(4)
            )
            / 4
        )

    e4, e64 = mean_err(4), mean_err(64)
    # 16x more hashes: the error should drop 4x (measured 3.9-4.1x for SimHash)
    assert 2.8 < e4 / e64 < 5.5, (e4, e64)


def test_simhash_estimate_is_unbiased():
    """Over R independent estimates the mean's deviation from YOSO-E is pure noise: E[z^2] = 1."""
    q, k, v = related_qkv(n=48)
    exact = yoso_attention(q, k, v, expectation=True, hash_code_len=4)
    runs = 60
    est = torch.stack(
        [
            yoso_attention(
                q,
                k,
                v,
                num_hash=32,
                hash_code_len=4,
                fast_hash=False,
                backend="reference",
                generator=torch.Generator().manual_seed(s),
            )
            for s in range(runs)
        ]
    )
    z = (est.mean(0) - exact) / (est.std(0) / math.sqrt(runs))
    # measured 1.00; a bias of 3% of |E| already pushes this above 2
    assert 0.8 < (z**2).mean().item() < 1.3
    assert rel_err(est.mean(0), exact) < 0.1


def test_padded_keys_add_nothing_and_padded_queries_read_zero():
    q, k, v = related_qkv(b=2, h=2, n=30, d=16)
    mask = torch.ones(2, 30)
    mask[0, 20:] = 0
    v_loud = v.clone()
    v_loud[0, :, 20:] = 1e6
    out = yoso_attention(
        q,
        k,
        v_loud,
        mask,
        num_hash=16,
        hash_code_len=3,
        backend="reference",
        generator=torch.Generator().manual_seed(3),
    )
    assert torch.all(out[0, :, 20:] == 0)
    alone = yoso_attention(
        q[:1, :, :20],
        k[:1, :, :20],
        v[:1, :, :20],
        num_hash=16,
        hash_code_len=3,
        backend="reference",
        generator=torch.Generator().manual_seed(3),
    )
    torch.testing.assert_close(out[0, :, :20], alone[0], rtol=1e-6, atol=1e-6)


def test_never_builds_a_quadratic_tensor():
    """Forward and LSH backward allocate nothing of n*n elements (n = 4096 here)."""

    class LargestTensor(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    LargestTensor.largest = max(LargestTensor.largest, t.numel())
            return out

    n, d = 4096, 16
    q, k, v = (t.requires_grad_() for t in related_qkv(b=1, h=1, n=n, d=d))
    with LargestTensor():
        out = yoso_attention(q, k, v, num_hash=4, hash_code_len=6, backend="reference")
        out.sum().backward()
    # the largest is the weighted cumulation's n * d * d chunk (1M here); n * n would be 16.8M
    assert LargestTensor.largest <= n * d * d, LargestTensor.largest
    assert q.grad is not None and k.grad is not None and v.grad is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_return_their_dtype(dtype):
    q, k, v = related_qkv(n=40)
    ref = yoso_attention(
        q,
        k,
        v,
        num_hash=8,
        hash_code_len=4,
        fast_hash=False,
        backend="reference",
        generator=torch.Generator().manual_seed(0),
    )
    low = yoso_attention(
        q.to(dtype),
        k.to(dtype),
        v.to(dtype),
        num_hash=8,
        hash_code_len=4,
        fast_hash=False,
        backend="reference",
        generator=torch.Generator().manual_seed(0),
    )
    assert low.dtype == dtype
    # hash codes may flip where a projection rounds across zero; almost all entries agree
    close = ((low.float() - ref).abs() <= 0.02 * ref.abs().max()).float().mean()
    assert close > 0.95
    exp = yoso_attention(q.to(dtype), k.to(dtype), v.to(dtype), expectation=True, hash_code_len=4)
    assert exp.dtype == dtype


# ---------------------------------------------------------------------------------------------- gradients


def _grads(q, k, v, g, **kw):
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    (yoso_attention(q, k, v, **kw) * g).sum().backward()
    return q.grad, k.grad, v.grad


def test_lsh_gradients_approach_the_surrogate():
    q, k, v = related_qkv(n=32, d=16)
    g = torch.randn_like(v)
    exact = _grads(q, k, v, g, expectation=True, hash_code_len=4)

    def err(m):
        runs = [
            _grads(
                q,
                k,
                v,
                g,
                num_hash=m,
                hash_code_len=4,
                fast_hash=False,
                backend="reference",
                generator=torch.Generator().manual_seed(s),
            )
            for s in range(3)
        ]
        return [sum(rel_err(r[i], exact[i]) for r in runs) / 3 for i in range(3)]

    few, many = err(4), err(128)
    for name, a, b in zip("qkv", few, many):
        assert b < a / 3, (name, a, b)  # 32x more hashes: about 5.7x less error
        assert b < 0.35, (name, b)


def test_lsh_backward_false_uses_the_surrogate():
    q, k, v = related_qkv(n=20, d=8)
    g = torch.randn_like(v)
    exact = _grads(q, k, v, g, expectation=True, hash_code_len=4)
    sampled = _grads(q, k, v, g, num_hash=2, hash_code_len=4, lsh_backward=False, backend="reference")
    for a, b in zip(sampled, exact):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_value_gradient_passes_gradcheck_with_fixed_codes():
    gen = torch.Generator().manual_seed(0)
    bh, n, d, m, tau = 2, 9, 4, 3, 2
    q_codes = torch.randint(0, 2**tau, (bh, n, m), generator=gen, dtype=torch.int32)
    k_codes = torch.randint(0, 2**tau, (bh, n, m), generator=gen, dtype=torch.int32)
    mask = torch.ones(bh, n, dtype=torch.float64)
    mask[1, 6:] = 0
    q = unit(bh, n, d, gen=gen).double()
    k = unit(bh, n, d, gen=gen).double()
    v = torch.randn(bh, n, d, generator=gen, dtype=torch.float64, requires_grad=True)

    def f(value):
        return lsh_attention(q, k, value, mask, mask, q_codes, k_codes, tau, True, "reference")

    assert torch.autograd.gradcheck(f, (v,), eps=1e-6, atol=1e-8)


def test_weighted_cumulation_equals_its_quadratic_form():
    gen = torch.Generator().manual_seed(1)
    bh, n, d, w, m, tau = 2, 13, 5, 7, 4, 3
    qc = torch.randint(0, 2**tau, (bh, n, m), generator=gen, dtype=torch.int32)
    kc = torch.randint(0, 2**tau, (bh, n, m), generator=gen, dtype=torch.int32)
    qm, km = torch.ones(bh, n), torch.ones(bh, n)
    km[0, 10:] = 0
    qm[1, :3] = 0
    qw, kw, v = torch.randn(bh, n, w), torch.randn(bh, n, w), torch.randn(bh, n, d)
    collide = (qc[:, :, None, :] == kc[:, None, :, :]).float().mean(-1)  # (bh, n_q, n_k)
    coef = collide * (qw @ kw.transpose(-1, -2)) * qm[:, :, None] * km[:, None, :]
    torch.testing.assert_close(
        lsh_weighted_cumulation(qc, kc, qm, km, qw, kw, v, tau), coef @ v, rtol=1e-5, atol=1e-5
    )
    plain = collide * qm[:, :, None] * km[:, None, :]
    torch.testing.assert_close(lsh_cumulation(qc, kc, qm, km, v, tau), plain @ v, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda q, k, v: (q[0], k, v, None, {}), ["query", "rank 3"]),
        (lambda q, k, v: (q, k[:1], v, None, {}), ["(batch, heads)"]),
        (lambda q, k, v: (q, k, v[:, :, :5], None, {}), ["key and value", "7", "5"]),
        (lambda q, k, v: (q, k[..., :3], v, None, {}), ["head_dim 4", "got 3"]),
        (lambda q, k, v: (q, k, v, torch.ones(2, 6), {}), ["mask", "(2, 7)", "(2, 6)"]),
        (lambda q, k, v: (q, k, v, torch.ones(2, 1, 7), {}), ["mask", "(2, 1, 7)"]),
        (lambda q, k, v: (q.long(), k, v, None, {}), ["query", "floating", "int64"]),
        (lambda q, k, v: (q, k, v.int(), None, {}), ["value", "int32"]),
        (lambda q, k, v: (q, k, v, None, {"hash_code_len": 0}), ["hash_code_len", "[1, 16]", "0"]),
        (lambda q, k, v: (q, k, v, None, {"hash_code_len": 20}), ["hash_code_len", "20"]),
        (lambda q, k, v: (q, k, v, None, {"num_hash": 0}), ["num_hash", "0"]),
        (lambda q, k, v: (q, k, v, None, {"backend": "tpu"}), ["backend", "tpu"]),
    ],
)
def test_bad_input_is_a_value_error_naming_the_problem(make, words):
    q, k, v = related_qkv(b=2, h=3, n=7, d=4)
    q, k, v, mask, kwargs = make(q, k, v)
    with pytest.raises(ValueError) as err:
        yoso_attention(q, k, v, mask, **kwargs)
    for word in words:
        assert word in str(err.value), str(err.value)


def _lsh_attention_args(seed: int, backend: str, lsh_backward: bool):
    gen = torch.Generator().manual_seed(seed)
    bh, n_q, n_k, d, m, tau = 2, 11, 13, 8, 4, 3
    q = unit(bh, n_q, d, gen=gen).requires_grad_()
    k = unit(bh, n_k, d, gen=gen).requires_grad_()
    v = torch.randn(bh, n_k, d, generator=gen, requires_grad=True)
    q_mask, k_mask = torch.ones(bh, n_q), torch.ones(bh, n_k)
    q_mask[1, 8:], k_mask[0, 10:] = 0, 0
    q_codes = torch.randint(0, 1 << tau, (bh, n_q, m), generator=gen, dtype=torch.int32)
    k_codes = torch.randint(0, 1 << tau, (bh, n_k, m), generator=gen, dtype=torch.int32)
    return (q, k, v, q_mask, k_mask, q_codes, k_codes, tau, lsh_backward, backend)


@pytest.mark.parametrize("lsh_backward", [True, False])
def test_lsh_attention_opcheck_covers_the_backward(lsh_backward):
    """Schema, fake, autograd registration and traced forward + backward of the sampled operator."""
    args = _lsh_attention_args(3, "reference", lsh_backward)
    torch.library.opcheck(torch.ops.yoso.lsh_attention.default, args)
    out = lsh_attention(*args)
    out.backward(torch.ones_like(out))
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in args[:3])


def test_lsh_attention_backward_modes_share_the_forward_and_differ_in_gradients():
    """Both backwards give the same forward; the surrogate is YOSO-E's gradient, not the LSH estimate."""
    grads = []
    for lsh_backward in (True, False):
        args = _lsh_attention_args(4, "reference", lsh_backward)
        out = lsh_attention(*args)
        out.backward(torch.ones_like(out))
        grads.append((out.detach(), *(t.grad for t in args[:3])))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    assert not torch.allclose(grads[0][1], grads[1][1])


def test_expectation_weights_function_composed_with_values_has_yoso_e_gradients():
    """The models' ``ExpectationWeights`` (returned attentions) and ``yoso_e`` share one surrogate:
    ``A V`` built from the weights has the gradients of YOSO-E on the same Q, K, V, padding included."""
    from yoso_core.attention.expectation import ExpectationWeights, yoso_e

    gen = torch.Generator().manual_seed(3)
    b, h, n, d, tau = 2, 3, 9, 16, 6
    q, k = unit(b, h, n, d, gen=gen), unit(b, h, n, d, gen=gen)
    v = torch.randn(b, h, n, d, generator=gen)
    mask = torch.ones(b, n)
    mask[1, 6:] = 0
    g = torch.randn(b, h, n, d, generator=gen)

    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    weights = ExpectationWeights.apply(ours[0], ours[1], mask, tau)
    (torch.matmul(weights, ours[2]) * g).sum().backward()

    flat = [t.reshape(b * h, n, d).clone().requires_grad_() for t in (q, k, v)]
    flat_mask = mask[:, None, :].expand(b, h, n).reshape(b * h, n)
    out = yoso_e(*flat, flat_mask, flat_mask, tau)
    (out * g.reshape(b * h, n, d)).sum().backward()
    for mine, theirs in zip(ours, flat):
        torch.testing.assert_close(mine.grad.reshape(b * h, n, d), theirs.grad, rtol=1e-5, atol=1e-6)
    assert ours[0].grad.abs().sum() > 0 and torch.all(ours[0].grad[1, :, 6:] == 0)  # padded queries: none
