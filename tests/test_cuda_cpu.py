"""The CUDA kernels run on the CPU, without a GPU, on every change.

``tests/cuda_cpu/driver.cpp`` includes the kernels' device code (``yoso_core/csrc/cuda/*.cuh``)
under the CUDA execution model of ``tests/cuda_cpu/cuda_cpu.h`` (every CUDA thread a fiber,
block barriers, warp shuffles, junk-filled shared memory of the exact launch size, a GPU's launch
limits) and runs the four operators at their launchers' grid, block and shared-memory sizes, in
forward, reverse and random thread order, against plain reference loops on the same inputs and
codes (codes bit-identical, float32 within 1e-5 relative). It is built here with g++ under
AddressSanitizer and UBSan; planted bugs in copies of the headers must make it fail. The same
kernels also run on inputs drawn here with torch (``driver --io``) and must equal the project's
pure-PyTorch reference, the oracle the CPU operators are held to in tests/test_kernels.py.
What this cannot show (true races, memory ordering, code generation, speed) is in docs/kernels.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import assert_close_rel

from yoso_core.attention import hashing, sampled

ROOT = Path(__file__).resolve().parent.parent
CUDA = ROOT / "yoso_core" / "csrc" / "cuda"
DRIVER = ROOT / "tests" / "cuda_cpu" / "driver.cpp"
OPERATORS = ("fast_hash", "lsh_cumulation", "lsh_weighted_cumulation", "lsh_backward")
ORDERS = ("forward", "reverse", "random")
CXX = shutil.which("g++")
FLAGS = ["-std=c++17", "-ffp-contract=off", "-Wall", "-Wextra"]
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]

# One bug a kernel, each a one-line change a review could miss: (header, source, planted).
PLANTED = {
    "fast_hash": (
        "fast_hash.cuh",
        "first + half]);\n        }\n        __syncthreads();\n",
        "first + half]);\n        }\n",
    ),  # no barrier between butterfly stages
    "lsh_cumulation": (
        "lsh_cumulation.cuh",
        "out[(b * n_q + i) * d + t] += acc;",
        "out[(b * n_q + i) * d + t] = acc;",
    ),  # `=` for `+=`: every chunk of hashes but the last is lost
    "lsh_weighted_cumulation": (
        "lsh_weighted_cumulation.cuh",
        "args.out[(b * n_q + i) * d + t] += acc;",
        "args.out[(b * n_q + i) * d + t] = acc;",
    ),
    "lsh_backward": (
        "lsh_backward.cuh",
        "offset > 0; offset /= 2",
        "offset > 1; offset /= 2",
    ),  # the warp reduction one step short
}

pytestmark = pytest.mark.skipif(
    CXX is None, reason="no C++ compiler (g++ on PATH): the CPU run of the CUDA kernels is compiled with it"
)


def _compile(include_root: Path, output: Path, extra: list[str]) -> subprocess.Popen:
    command = [CXX, *FLAGS, *extra, f"-I{include_root}", str(DRIVER), "-o", str(output)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _planted_tree(root: Path) -> Path:
    """A copy of csrc with every bug of PLANTED in it, laid out like the repository."""
    target = root / "yoso_core" / "csrc"
    shutil.copytree(ROOT / "yoso_core" / "csrc", target, ignore=shutil.ignore_patterns("*.cpp", "*.cu"))
    for header, source, planted in PLANTED.values():
        path = target / "cuda" / header
        text = path.read_text()
        assert text.count(source) == 1, f"{header} no longer contains the line the planted bug replaces"
        path.write_text(text.replace(source, planted))
    return root


@pytest.fixture(scope="module")
def drivers(tmp_path_factory) -> dict[str, Path]:
    """The driver under AddressSanitizer/UBSan, and (without sanitizers) the one with planted bugs.

    Both compile at once: two cores, about half a minute.
    """
    build = tmp_path_factory.mktemp("cuda_cpu")
    planted_root = _planted_tree(build / "planted")
    jobs = {
        "sanitized": _compile(ROOT, build / "driver", SANITIZE),
        "planted": _compile(planted_root, build / "driver_planted", ["-O1"]),
    }
    paths = {"sanitized": build / "driver", "planted": build / "driver_planted"}
    for name, job in jobs.items():
        output, _ = job.communicate()
        assert job.returncode == 0, f"compiling the {name} driver failed:\n{output}"
    return paths


def _run(driver: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(driver), *args], capture_output=True, text=True, timeout=600)


def _tally(stdout: str) -> tuple[int, int]:
    found = re.search(r"^(\d+) passed, (\d+) failed$", stdout, re.MULTILINE)
    assert found, f"no summary line in the driver's output:\n{stdout}"
    return int(found.group(1)), int(found.group(2))


def test_device_headers_need_neither_torch_nor_the_cuda_runtime():
    allowed = {"<cstdint>", '"../common.h"', '"device.cuh"'}
    headers = sorted(CUDA.glob("*.cuh"))
    assert {h.stem for h in headers} >= set(OPERATORS)
    for header in headers:
        includes = set(re.findall(r"^#include\s+(\S+)", header.read_text(), re.MULTILINE))
        assert includes <= allowed, f"{header.name} includes {sorted(includes - allowed)}"


def test_launchers_take_their_sizes_from_the_headers_plans():
    """The driver reproduces the launches through the same plan functions, so it cannot drift."""
    for op in OPERATORS:
        launcher = (CUDA / f"{op}.cu").read_text()
        assert f'#include "{op}.cuh"' in launcher
        assert f"{op}_launch(" in launcher, f"{op}.cu does not call {op}_launch"
        assert "__global__" not in launcher, f"{op}.cu still holds device code"
        assert f"{op}_launch(" in DRIVER.read_text()
    for op in ("lsh_cumulation", "lsh_weighted_cumulation"):
        assert f"{op}_passes(" in (CUDA / f"{op}.cu").read_text()
        assert f"{op}_passes(" in DRIVER.read_text()


def test_execution_model_runs_what_a_gpu_runs_and_refuses_what_it_refuses(drivers):
    result = _run(drivers["sanitized"], "--emulator")
    assert result.returncode == 0, result.stdout + result.stderr
    passed, failed = _tally(result.stdout)
    assert failed == 0 and passed == len(re.findall(r"^ok   ", result.stdout, re.MULTILINE)) >= 30
    for check in ("deadlock", "which has exited", "does not name", "1025 threads", "memory is refused"):
        assert check in result.stdout, f"the emulator's checks do not show {check!r}:\n{result.stdout}"


def test_cuda_kernels_on_the_cpu_match_the_reference_in_every_thread_order(drivers):
    result = _run(drivers["sanitized"])
    assert result.returncode == 0, result.stdout + result.stderr
    passed, failed = _tally(result.stdout)
    assert failed == 0
    for op in OPERATORS:
        for order in ORDERS:
            rows = re.findall(rf"^ok   {op} +{order} ", result.stdout, re.MULTILINE)
            assert len(rows) >= 7, f"{op} in {order} order ran {len(rows)} cases"
    assert passed == len(re.findall(r"^ok   ", result.stdout, re.MULTILINE)) >= 90
    assert "runtime error" not in result.stderr  # UBSan


def test_a_shared_memory_overrun_is_reported_by_addresssanitizer(drivers):
    result = _run(drivers["sanitized"], "--plant", "overrun")
    assert result.returncode != 0
    assert "heap-buffer-overflow" in result.stderr and "write_past_shared" in result.stderr


@pytest.mark.parametrize("op", OPERATORS)
def test_a_planted_bug_fails_the_check(drivers, op):
    result = _run(drivers["planted"], "--only", op)
    assert result.returncode == 1, result.stdout + result.stderr
    passed, failed = _tally(result.stdout)
    assert failed >= 1
    assert re.search(rf"^FAIL {op} ", result.stdout, re.MULTILINE)


def _write(directory: Path, name: str, **arrays: torch.Tensor) -> None:
    for array, tensor in arrays.items():
        tensor = tensor.contiguous()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.view(torch.int16)  # the bits, as the kernel reads them
        (directory / f"{name}.{array}.bin").write_bytes(tensor.numpy().tobytes())


def _read(directory: Path, name: str, array: str, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    data = bytearray((directory / f"{name}.{array}.bin").read_bytes())
    return torch.frombuffer(data, dtype=dtype).reshape(shape)


def _unit(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=-1)


def _padded_mask(gen: torch.Generator, bh: int, n: int) -> torch.Tensor:
    mask = (torch.rand(bh, n, generator=gen) > 0.25).float()
    mask[:, -1] = 0.0  # a padded tail
    return mask


def test_cuda_kernels_on_the_cpu_equal_the_reference_on_torch_inputs(drivers, tmp_path):
    """Codes of the fast hash bit-identical; cumulations and gradients within 1e-5 relative."""
    gen = torch.Generator().manual_seed(18)
    lines, checks = [], []
    # fast hash: float32, bfloat16 and float16 rows; head dims 1, 48, 320; 256 hashes
    for name, (bh, n, d, m, tau, dtype) in {
        "hash_f32": (2, 97, 48, 32, 8, torch.float32),
        "hash_bf16": (1, 300, 320, 16, 16, torch.bfloat16),
        "hash_f16": (3, 7, 33, 256, 4, torch.float16),
        "hash_d1": (1, 1, 1, 1, 1, torch.float32),
    }.items():
        x = torch.randn(bh, n, d, generator=gen).to(dtype)
        diagonals = hashing.draw_fast_hash_diagonals(bh, d, m, tau, torch.device("cpu"), gen)
        code = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}[dtype]
        _write(tmp_path, name, x=x, diagonals=diagonals)
        lines.append(f"{name} fast_hash {bh} {n} {d} {m} {tau} {diagonals.shape[1]} {code}")
        checks.append((name, "codes", torch.int32, hashing.fast_hash(x, diagonals, m, tau)))
    # cumulations and backward on the codes of the reference fast hash of unit rows, padded masks
    for name, (bh, n_q, n_k, d, dv, m, tau, w) in {
        "short": (2, 97, 300, 64, 64, 8, 6, 16),
        "full_buckets": (1, 300, 97, 33, 20, 4, 2, 5),
        "wide": (1, 13, 29, 320, 17, 3, 3, 1),
    }.items():
        q, k = _unit(gen, bh, n_q, d), _unit(gen, bh, n_k, d)
        diagonals = hashing.draw_fast_hash_diagonals(bh, d, m, tau, torch.device("cpu"), gen)
        qc, kc = hashing.fast_hash(q, diagonals, m, tau), hashing.fast_hash(k, diagonals, m, tau)
        qm, km = _padded_mask(gen, bh, n_q), _padded_mask(gen, bh, n_k)
        v, g = torch.randn(bh, n_k, dv, generator=gen), torch.randn(bh, n_q, dv, generator=gen)
        qw, kw = torch.randn(bh, n_q, w, generator=gen), torch.randn(bh, n_k, w, generator=gen)
        common = dict(query_codes=qc, key_codes=kc, query_mask=qm, key_mask=km, value=v)
        sizes = f"{bh} {n_q} {n_k} {dv} {dv} {m} {tau} {w}"
        _write(tmp_path, f"{name}_cum", **common)
        lines.append(f"{name}_cum lsh_cumulation {sizes}")
        checks.append((f"{name}_cum", "out", torch.float32, sampled.lsh_cumulation(qc, kc, qm, km, v, tau)))
        _write(tmp_path, f"{name}_wcum", **common, query_weight=qw, key_weight=kw)
        lines.append(f"{name}_wcum lsh_weighted_cumulation {sizes}")
        expected = sampled.lsh_weighted_cumulation(qc, kc, qm, km, qw, kw, v, tau)
        checks.append((f"{name}_wcum", "out", torch.float32, expected))
        _write(tmp_path, f"{name}_bwd", **common, query=q, key=k, grad=g)
        lines.append(f"{name}_bwd lsh_backward {bh} {n_q} {n_k} {d} {dv} {m} {tau} 0")
        grads = sampled.lsh_backward(qc, kc, qm, km, q, k, v, g, tau)
        for array, expected in zip(("grad_query", "grad_key", "grad_value"), grads):
            checks.append((f"{name}_bwd", array, torch.float32, expected))
    (tmp_path / "cases.txt").write_text("\n".join(lines) + "\n")
    result = _run(drivers["sanitized"], "--io", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(lines)} cases run" in result.stdout
    for name, array, dtype, expected in checks:
        actual = _read(tmp_path, name, array, dtype, tuple(expected.shape))
        if dtype == torch.int32:
            assert torch.equal(actual, expected), f"{name}: codes differ from the reference"
        else:
            assert expected.abs().max() > 0, f"{name}.{array}: the case tests nothing"
            assert_close_rel(actual, expected.float())
