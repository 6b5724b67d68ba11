"""The self-check of the compiled operators: each one against the pure-PyTorch reference.

``self_check()`` compares every operator on small random inputs on each device present and
returns one ``CheckResult`` per device and operator. ``yoso build-kernels`` runs it after every
build as ``python -m yoso_core.attention.selfcheck --json`` (``kernels.build.run_self_check``),
which prints the results as one JSON line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import torch

from ..kernels.build import CheckResult
from . import hashing, ops
from .backends import REFERENCE, compiled_backend

__all__ = ["CheckResult", "self_check"]


def self_check(devices: list[str] | None = None, seed: int = 0) -> list[CheckResult]:
    """Compare every compiled operator with the reference on small random inputs on each device present.

    Codes must be identical; cumulations within 1e-5 relative (float32). A device whose library
    does not load is reported as failed with an infinite error.
    """
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    ops.forget_failures()
    results = []
    gen = torch.Generator().manual_seed(seed)
    bh, n_q, n_k, d, num_hash, tau = 3, 37, 29, 48, 8, 6
    x = torch.randn(bh, n_q, d, generator=gen)
    diagonals = hashing.draw_fast_hash_diagonals(bh, d, num_hash, tau, torch.device("cpu"), gen)
    q_codes = torch.randint(0, 1 << tau, (bh, n_q, num_hash), generator=gen, dtype=torch.int32)
    k_codes = torch.randint(0, 1 << tau, (bh, n_k, num_hash), generator=gen, dtype=torch.int32)
    q_mask = (torch.rand(bh, n_q, generator=gen) > 0.2).float()
    k_mask = (torch.rand(bh, n_k, generator=gen) > 0.2).float()
    value = torch.randn(bh, n_k, d, generator=gen)
    q_weight = torch.randn(bh, n_q, 24, generator=gen)
    k_weight = torch.randn(bh, n_k, 24, generator=gen)
    query = torch.randn(bh, n_q, d, generator=gen)
    grad = torch.randn(bh, n_q, d, generator=gen)

    def outputs(backend, device: str) -> dict[str, torch.Tensor]:
        """Every operator of ``backend`` on the inputs above, moved to ``device``."""
        q_c, k_c, q_m, k_m, v = (t.to(device) for t in (q_codes, k_codes, q_mask, k_mask, value))
        backward_args = (q_c, k_c, q_m, k_m, query.to(device), x[:, :n_k].to(device), v, grad.to(device))
        return {
            "fast_hash": backend.fast_hash(x.to(device), diagonals.to(device), num_hash, tau),
            "lsh_cumulation": backend.lsh_cumulation(q_c, k_c, q_m, k_m, v, tau),
            "lsh_weighted_cumulation": backend.lsh_weighted_cumulation(
                q_c, k_c, q_m, k_m, q_weight.to(device), k_weight.to(device), v, tau
            ),
            "lsh_backward": torch.cat(backend.lsh_backward(*backward_args, tau), dim=1),
        }

    expected = outputs(REFERENCE, "cpu")
    for device in devices:
        backend, _ = compiled_backend(device)
        if backend is None:
            results.extend(CheckResult(device, op, float("inf"), False) for op in expected)
            continue
        got = outputs(backend, device)
        for op, want in expected.items():
            have = got[op].cpu()
            if op == "fast_hash":
                error = (have != want).float().mean().item()
                passed = error == 0.0
            else:
                error = ((have - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()
                passed = error <= 1e-5
            results.append(CheckResult(device, op, error, passed))
    return results


def _main(argv: list[str]) -> None:
    """``python -m yoso_core.attention.selfcheck --json``: print the results as one JSON line."""
    if argv != ["--json"]:
        raise SystemExit("usage: python -m yoso_core.attention.selfcheck --json")
    print(json.dumps([asdict(c) for c in self_check()]))


if __name__ == "__main__":
    _main(sys.argv[1:])
