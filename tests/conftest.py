"""Shared fixtures: deterministic seeds, one torch thread, the compiled CPU kernels."""

from __future__ import annotations

import warnings

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _quiet_fallback_warning():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="yoso: using the slow pure-PyTorch attention")
        yield


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train fastest on one thread, and the test suite shares the machine's cores.

    Use per module with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cpu_library():
    """Build (or find in the cache) the CPU library, once per test session.

    On a fresh cache, tests that ran before this fixture may have found no library; their failed
    load is forgotten so that every later test loads the one just built.
    """
    from yoso_core.attention import ops
    from yoso_core.kernels import build

    result = build.build_library("cpu")
    ops.forget_failures()
    return result


@pytest.fixture(scope="session")
def cpu_ops(cpu_library):
    """The compiled CPU backend, built once per test session."""
    from yoso_core.attention.backends import compiled_backend

    backend, why = compiled_backend("cpu")
    assert backend is not None, why
    return backend
