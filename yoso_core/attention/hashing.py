"""Locality-sensitive hash codes for unit vectors: SimHash and the fast (Hadamard) hash.

For one random hyperplane ``r``, unit vectors ``q`` and ``k`` fall on the same side with
probability ``1 - arccos(q.k)/pi``. A hash function takes ``hash_code_len`` (tau) such signs and
packs them into an integer code in ``[0, 2**tau)``: bit ``b`` of hash ``f`` is
``x . r[f*tau + b] > 0``. Two vectors collide under one hash with probability
``(1 - arccos(q.k)/pi) ** tau`` when the hyperplanes are independent Gaussians (SimHash).

SimHash: ``codes = pack(sign(x @ R))`` with ``R ~ N(0, 1)`` of shape ``(d, num_hash * tau)``;
``O(d * num_hash * tau)`` per vector.

Fast hash: a structured random rotation ``x -> H D3 H D2 H D1 x`` (``D`` random +-1 diagonals,
``H`` the Walsh-Hadamard transform, ``d`` zero-padded to a power of two ``P``) yields ``P``
nearly Gaussian, nearly independent coordinates in ``O(P log P)``; ``ceil(num_hash*tau / P)``
independent rotations supply all the bits. Bits within one rotation are exactly orthogonal
projections rather than independent ones, so the fast hash is very slightly biased.

Randomness is drawn here, in Python, from the caller's generator, and passed to the (reference or
compiled) code functions as tensors, so hashing itself is deterministic.
"""

from __future__ import annotations

import math

import torch


def padded_dim(head_dim: int) -> int:
    """The power of two the fast hash pads ``head_dim`` to."""
    return 1 << max(0, math.ceil(math.log2(head_dim)))


def num_rotations(head_dim: int, num_hash: int, hash_code_len: int) -> int:
    """How many independent Hadamard rotations supply ``num_hash * hash_code_len`` bits."""
    return math.ceil(num_hash * hash_code_len / padded_dim(head_dim))


def _draw_device(device: torch.device, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def draw_simhash_projection(
    heads: int,
    head_dim: int,
    num_hash: int,
    hash_code_len: int,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian hyperplanes, float32 ``(heads, head_dim, num_hash * hash_code_len)``."""
    shape = (heads, head_dim, num_hash * hash_code_len)
    r = torch.randn(shape, generator=generator, device=_draw_device(device, generator))
    return r.to(device)


def draw_fast_hash_diagonals(
    heads: int,
    head_dim: int,
    num_hash: int,
    hash_code_len: int,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random +-1 diagonals, float32 ``(heads, rotations, 3, padded_dim)``."""
    shape = (heads, num_rotations(head_dim, num_hash, hash_code_len), 3, padded_dim(head_dim))
    bits = torch.randint(0, 2, shape, generator=generator, device=_draw_device(device, generator))
    return (bits.to(device, torch.float32) * 2 - 1).contiguous()


def pack_bits(projections: torch.Tensor, num_hash: int, hash_code_len: int) -> torch.Tensor:
    """Projections ``(..., >= num_hash*tau)`` -> int32 codes ``(..., num_hash)``; bit b: coord f*tau+b > 0."""
    bits = projections[..., : num_hash * hash_code_len] > 0
    bits = bits.reshape(*bits.shape[:-1], num_hash, hash_code_len).to(torch.int32)
    weights = 2 ** torch.arange(hash_code_len, device=bits.device, dtype=torch.int32)
    return (bits * weights).sum(-1, dtype=torch.int32)


def simhash(x: torch.Tensor, projection: torch.Tensor, num_hash: int, hash_code_len: int) -> torch.Tensor:
    """SimHash codes: ``x`` ``(bh, n, d)``, ``projection`` ``(bh, d, m*tau)`` -> int32 ``(bh, n, m)``."""
    return pack_bits(torch.bmm(x.float(), projection.float()), num_hash, hash_code_len)


def hadamard_transform(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised Walsh-Hadamard transform over the last dim (a power of two), by butterflies.

    Stage ``h`` pairs element ``i`` with ``i + h`` inside blocks of ``2h`` and writes ``(a+b, a-b)``;
    the compiled kernels run the same stages in the same order, so codes match bit for bit.
    """
    p = x.shape[-1]
    h = 1
    while h < p:
        y = x.reshape(*x.shape[:-1], p // (2 * h), 2, h)  # (..., blocks, pair, h)
        a, b = y[..., 0, :], y[..., 1, :]
        x = torch.stack((a + b, a - b), dim=-2).reshape(*x.shape[:-1], p)
        h *= 2
    return x


def fast_hash_projections(x: torch.Tensor, diagonals: torch.Tensor) -> torch.Tensor:
    """Rotated coordinates. ``x`` ``(bh, n, d)``, ``diagonals`` ``(bh, R, 3, P)`` -> ``(bh, n, R*P)``."""
    bh, n, d = x.shape
    _, rotations, _, p = diagonals.shape
    y = torch.nn.functional.pad(x.float(), (0, p - d))  # (bh, n, P)
    y = y[:, None].expand(bh, rotations, n, p)  # (bh, R, n, P)
    for round_ in range(3):
        y = hadamard_transform(y * diagonals[:, :, round_, None, :])
    return y.transpose(1, 2).reshape(bh, n, rotations * p)


def fast_hash(x: torch.Tensor, diagonals: torch.Tensor, num_hash: int, hash_code_len: int) -> torch.Tensor:
    """Fast-hash codes: ``x`` ``(bh, n, d)``, ``diagonals`` ``(bh, R, 3, P)`` -> int32 ``(bh, n, m)``."""
    return pack_bits(fast_hash_projections(x, diagonals), num_hash, hash_code_len)


def hadamard_matrix(p: int, device: torch.device | None = None) -> torch.Tensor:
    """Sylvester's ``p x p`` Hadamard matrix (float64), for tests of the butterfly form."""
    h = torch.ones(1, 1, dtype=torch.float64, device=device)
    while h.shape[0] < p:
        h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)), 0)
    return h
