"""The compiled operators ``torch.ops.yoso.*``: loading the cached libraries and their fake kernels.

    fast_hash(x (bh, n, d), diagonals (bh, R, 3, P), num_hash, hash_code_len) -> int32 (bh, n, num_hash)
    lsh_cumulation(query_codes, key_codes, query_mask, key_mask, value, hash_code_len)
        -> float32 (bh, n_q, d)
    lsh_weighted_cumulation(query_codes, key_codes, query_mask, key_mask, query_weight, key_weight,
                            value, hash_code_len) -> float32 (bh, n_q, d)
    lsh_backward(query_codes, key_codes, query_mask, key_mask, query, key, value, grad, hash_code_len)
        -> float32 grad_query (bh, n_q, d), grad_key (bh, n_k, d), grad_value (bh, n_k, dv)

Same semantics as the reference functions in ``hashing`` and ``sampled``. The libraries are built by
``yoso build-kernels`` (``yoso_core.kernels.build``); loading them never raises: ``load`` returns
whether the library is usable and, when not, why. Of the CPU library's instruction-set variants
exactly one is loaded, the best this CPU runs or the one ``$YOSO_CPU_ISA`` names
(``kernels.isa.select``); ``loaded_variant()`` says which. The fakes (shape-only implementations) let
``torch.compile`` and ``torch.library.opcheck`` trace the operators without running them.
"""

from __future__ import annotations

import torch

from ..kernels import cache, isa

_status: dict[str, tuple[bool, str]] = {}
_variant: str | None = None  # the CPU variant this process loaded
_fakes_registered = False


def _register_fakes() -> None:
    global _fakes_registered
    if _fakes_registered:
        return

    @torch.library.register_fake("yoso::fast_hash")
    def _fast_hash_fake(x, diagonals, num_hash, hash_code_len):
        return x.new_empty((x.shape[0], x.shape[1], num_hash), dtype=torch.int32)

    @torch.library.register_fake("yoso::lsh_cumulation")
    def _lsh_cumulation_fake(query_codes, key_codes, query_mask, key_mask, value, hash_code_len):
        return value.new_empty((value.shape[0], query_codes.shape[1], value.shape[2]), dtype=torch.float32)

    @torch.library.register_fake("yoso::lsh_weighted_cumulation")
    def _lsh_weighted_cumulation_fake(
        query_codes, key_codes, query_mask, key_mask, query_weight, key_weight, value, hash_code_len
    ):
        return value.new_empty((value.shape[0], query_codes.shape[1], value.shape[2]), dtype=torch.float32)

    @torch.library.register_fake("yoso::lsh_backward")
    def _lsh_backward_fake(
        query_codes, key_codes, query_mask, key_mask, query, key, value, grad, hash_code_len
    ):
        bh, n_q, n_k = query_codes.shape[0], query_codes.shape[1], key_codes.shape[1]
        return (
            query.new_empty((bh, n_q, query.shape[2]), dtype=torch.float32),
            key.new_empty((bh, n_k, query.shape[2]), dtype=torch.float32),
            value.new_empty((bh, n_k, value.shape[2]), dtype=torch.float32),
        )

    _fakes_registered = True


def _already_defined() -> bool:
    """Whether the yoso schemas are registered in this process (by an earlier load)."""
    try:
        torch.ops.yoso.fast_hash.default  # noqa: B018 - attribute lookup raises when undefined
    except (AttributeError, RuntimeError):
        return False
    return True


def load(kind: str) -> tuple[bool, str]:
    """Load the compiled library ``kind`` ("cpu" or "cuda") once; ``(usable, why not)``. Never raises."""
    global _variant
    if kind in _status:
        return _status[kind]
    if kind == "cuda":
        ok, why = load("cpu")
        if not ok:
            _status[kind] = (False, f"the CUDA kernels need the CPU library first, but {why}")
            return _status[kind]
    try:
        variant = isa.select() if kind == "cpu" else None
    except isa.IsaError as exc:
        _status[kind] = (False, f"the compiled {kind} kernels were not loaded: {exc}")
        return _status[kind]
    try:
        key = cache.build_key()
        path = cache.library_path(kind, key, variant)
    except Exception as exc:  # unreadable sources: report, never break import
        _status[kind] = (False, f"cannot locate the compiled {kind} kernels: {exc}")
        return _status[kind]
    problem = cache.kernel_root_problem()
    if problem is not None:
        _status[kind] = (False, f"the compiled {kind} kernels cannot be looked up: {problem}")
        return _status[kind]
    if not path.is_file():
        _status[kind] = (
            False,
            f"the compiled {kind} kernels of yoso are not built for torch {torch.__version__} and these "
            f"sources (looked in {path.parent}); run `yoso build-kernels` to build them",
        )
        return _status[kind]
    damage = cache.verify_library(kind, key, variant)  # mapping a truncated library is a SIGBUS
    if damage is not None:
        _status[kind] = (
            False,
            f"the compiled {kind} kernels were not loaded: {damage}; rebuild them with `yoso build-kernels`",
        )
        return _status[kind]
    try:
        if not (kind == "cpu" and _already_defined()):
            torch.ops.load_library(str(path))
            _variant = variant if kind == "cpu" else _variant
        if kind == "cpu":
            _register_fakes()
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _status[kind] = (
            False,
            f"the compiled {kind} kernels at {path} failed to load ({first_line}); "
            "rebuild them with `yoso build-kernels --force`",
        )
        return _status[kind]
    _status[kind] = (True, "")
    return _status[kind]


def loaded_variant() -> str | None:
    """The CPU variant (``"avx512"``, ``"avx2"`` or ``"baseline"``) this process loaded, or None."""
    return _variant


def forget_failures() -> None:
    """Forget failed loads, so a library built since then is picked up; successful loads stay."""
    for kind in [k for k, (ok, _) in _status.items() if not ok]:
        del _status[kind]


def fast_hash(x: torch.Tensor, diagonals: torch.Tensor, num_hash: int, hash_code_len: int) -> torch.Tensor:
    """Compiled fast Hadamard hash; see ``hashing.fast_hash``."""
    return torch.ops.yoso.fast_hash(x, diagonals, num_hash, hash_code_len)


def lsh_cumulation(
    query_codes: torch.Tensor,
    key_codes: torch.Tensor,
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
    value: torch.Tensor,
    hash_code_len: int,
) -> torch.Tensor:
    """Compiled LSH cumulation; see ``sampled.lsh_cumulation``."""
    return torch.ops.yoso.lsh_cumulation(query_codes, key_codes, query_mask, key_mask, value, hash_code_len)


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
    """Compiled weighted LSH cumulation; see ``sampled.lsh_weighted_cumulation``."""
    return torch.ops.yoso.lsh_weighted_cumulation(
        query_codes, key_codes, query_mask, key_mask, query_weight, key_weight, value, hash_code_len
    )


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compiled LSH backward, all three gradients in one pass; see ``sampled.lsh_backward``."""
    return torch.ops.yoso.lsh_backward(
        query_codes, key_codes, query_mask, key_mask, query, key, value, grad, hash_code_len
    )
