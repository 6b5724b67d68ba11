"""`yoso build-kernels` and `yoso env`: the cache layout, metadata, self-check, and clear failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from yoso_cli.main import app
from yoso_core.attention import ops
from yoso_core.kernels import build, cache, isa, toolchain


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_build_kernels_no_cuda_reports_table_metadata_and_self_check(monkeypatch, cpu_library):
    calls, real = [], build.build_kernels

    def spy(*args, **kwargs):
        calls.append((args, kwargs, real(*args, **kwargs)))
        return calls[-1][2]

    monkeypatch.setattr(build, "build_kernels", spy)
    result = run("build-kernels", "--no-cuda")
    assert result.exit_code == 0, result.output
    ((args, kwargs, built),) = calls
    assert args[0] is False and kwargs["check"] is True  # --no-cuda, and the self-check always runs
    assert [r.kind for r in built.libraries] == ["cpu"]
    assert [(c.device, c.op, c.passed) for c in built.checks] == [
        ("cpu", op, True) for op in ("fast_hash", "lsh_cumulation", "lsh_weighted_cumulation", "lsh_backward")
    ]
    assert built.failed == []
    meta = json.loads(cache.metadata_path("cpu").read_text())
    assert meta["torch"] == torch.__version__ and meta["cuda"] == torch.version.cuda
    assert meta["sources_hash"] == cache.sources_hash()
    assert meta["built_at"] and sorted(meta["variants"]) == sorted(isa.variants())
    assert meta["variants"][isa.select()]["library"] == f"yoso_cpu_{isa.select()}.so"
    assert all(cache.library_path("cpu", isa=v).is_file() for v in isa.variants())
    assert built.libraries[0].variants == isa.variants()


def test_build_kernels_exits_1_naming_the_operators_whose_check_failed(monkeypatch, cpu_library):
    checks = [
        build.CheckResult("cpu", "fast_hash", 0.0, True),
        build.CheckResult("cpu", "lsh_backward", 0.5, False),
    ]
    library = cpu_library  # a real library; only its check is made to fail
    monkeypatch.setattr(build, "build_kernels", lambda *a, **k: build.KernelBuild([library], checks))
    result = run("build-kernels", "--no-cuda")
    assert result.exit_code == 1
    assert "the self-check failed for cpu lsh_backward;" in result.output


def test_key_changes_with_the_sources(monkeypatch, tmp_path):
    before = cache.build_key()
    copy = tmp_path / "csrc"
    shutil.copytree(cache.CSRC, copy)
    (copy / "common.h").write_text((copy / "common.h").read_text() + "\n// changed\n")
    monkeypatch.setattr(cache, "CSRC", copy)
    after = cache.build_key()
    assert before != after and after.startswith(f"torch{torch.__version__.split('+')[0]}")


def test_kernel_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path))
    assert cache.library_path("cpu").parent.parent == tmp_path


def test_bad_arch_is_a_usage_error():
    result = run("build-kernels", "--cuda", "--arch", "eighty")
    assert result.exit_code == 2
    assert "--arch entry 'eighty'" in result.output


def test_cuda_without_nvcc_says_so(monkeypatch):
    monkeypatch.setattr(toolchain, "find_nvcc", lambda: None)
    result = run("build-kernels", "--cuda")
    assert result.exit_code == 2
    assert "nvcc was not found" in result.output and "--no-cuda" in result.output


def test_compiler_error_exits_1_with_the_message(monkeypatch, tmp_path):
    broken = tmp_path / "csrc"
    (broken / "cpu").mkdir(parents=True)
    (broken / "ops.cpp").write_text('#include "no_such_header_yoso.h"\n')
    monkeypatch.setattr(cache, "CSRC", broken)
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path / "cache"))
    result = run("build-kernels", "--no-cuda")
    assert result.exit_code == 1
    assert "no_such_header_yoso.h" in result.output
    assert not cache.library_path("cpu").exists()


def test_env_json_reports_versions_and_kernels(cpu_library):
    result = run("env", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["torch"] == torch.__version__
    assert report["torch_threads"] == torch.get_num_threads()
    assert report["cuda_available"] == torch.cuda.is_available()
    cpu = report["kernels"]["cpu"]
    assert cpu["built"] and cpu["loads"] and cpu["path"] == str(cpu_library.path)
    assert report["kernel_key"] == cache.build_key()
    assert set(report) >= {"python", "transformers", "gpus", "nvcc", "kernel_root"}


def test_env_reports_unbuilt_kernels(monkeypatch, tmp_path):
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr(ops, "_status", {})
    result = run("env", "--json")
    assert result.exit_code == 0, result.output
    cpu = json.loads(result.stdout)["kernels"]["cpu"]
    assert not cpu["built"] and not cpu["loads"] and "yoso build-kernels" in cpu["error"]


def test_env_table_mentions_every_section(cpu_library):
    result = run("env")
    assert result.exit_code == 0, result.output
    for word in ("python", "torch", "transformers", "CPU threads", "GPUs", "nvcc", "cpu kernels"):
        assert word in result.output


@pytest.mark.slow
def test_fresh_build_into_a_temporary_cache(monkeypatch, tmp_path):
    """A full compile from nothing, as a new user's first `yoso build-kernels --no-cuda` does."""
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path))
    result = run("build-kernels", "--no-cuda", "--force")
    assert result.exit_code == 0, result.output
    assert cache.library_path("cpu").is_file() and cache.metadata_path("cpu").is_file()
    assert not list(tmp_path.rglob(".build-*"))


def _damaged_cache(tmp_path, cpu_library):
    """A copy of the built CPU library and its metadata in a fresh cache, the library cut in half."""
    root = tmp_path / "cache"
    shutil.copytree(cpu_library.path.parent, root / cpu_library.path.parent.name)
    library = root / cpu_library.path.parent.name / cpu_library.path.name
    size = library.stat().st_size
    with open(library, "r+b") as handle:
        handle.truncate(size // 2)
    return root, library, size


def _yoso(*args: str, kernel_dir) -> subprocess.CompletedProcess:
    """Run the CLI in a child process: mapping a damaged library there would kill only the child."""
    env = {**os.environ, "YOSO_KERNEL_DIR": str(kernel_dir)}
    return subprocess.run(
        [sys.executable, "-m", "yoso_cli.main", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_metadata_records_size_and_checksum(cpu_library):
    meta = cache.read_metadata("cpu")["variants"][isa.select()]
    assert meta["size"] == cpu_library.path.stat().st_size
    assert meta["sha256"] == cache.file_sha256(cpu_library.path)
    assert cache.verify_library("cpu") is None


def test_a_truncated_library_is_reported_not_loaded(tmp_path, cpu_library):
    root, library, size = _damaged_cache(tmp_path, cpu_library)
    env = {**os.environ, "YOSO_KERNEL_DIR": str(root)}
    check = "from yoso_core.attention import ops; ok, why = ops.load('cpu'); print(ok); print(why)"
    loaded = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr  # not -7 (SIGBUS)
    assert loaded.stdout.splitlines()[0] == "False"
    assert f"{size // 2} bytes, but its build wrote {size}" in loaded.stdout
    assert "yoso build-kernels" in loaded.stdout

    report = _yoso("env", "--json", kernel_dir=root)
    assert report.returncode == 0, report.stderr
    cpu = json.loads(report.stdout)["kernels"]["cpu"]
    assert cpu["built"] and not cpu["intact"] and not cpu["loads"] and "damaged" in cpu["error"]
    table = _yoso("env", kernel_dir=root)
    assert table.returncode == 0 and "damaged, not loaded" in table.stderr


def test_build_kernels_rebuilds_a_damaged_library_without_force(monkeypatch, tmp_path, cpu_library):
    root, library, size = _damaged_cache(tmp_path, cpu_library)
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(root))
    compiled = []

    def fake_compile(
        kind, archs, build_dir, cpu_lib, verbose, on_output, variant=None
    ):  # the compiler's file
        compiled.append(kind)
        name = cache.library_name(kind, variant)
        shutil.copy2(cpu_library.path.parent / name, build_dir / name)

    monkeypatch.setattr(build, "_compile", fake_compile)
    result = run("build-kernels", "--no-cuda")
    assert result.exit_code == 0, result.output
    assert compiled == ["cpu"] * len(isa.variants()) and "(cached)" not in result.output
    assert "rebuilt" in result.output and "damaged" in result.output
    assert library.stat().st_size == size and cache.verify_library("cpu", library.parent.name) is None
    again = build.build_library("cpu")
    assert again.cached and compiled == ["cpu"] * len(isa.variants())  # intact now: no second build


def test_a_kernel_dir_that_is_a_file_is_one_error_line(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(blocker))
    result = run("build-kernels", "--no-cuda")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: $YOSO_KERNEL_DIR")
    assert "is a file" in lines[0] and "Traceback" not in result.output
    report = run("env", "--json")
    assert report.exit_code == 0
    assert "is a file" in json.loads(report.stdout)["kernel_root_error"]


def test_build_kernels_returns_the_self_check_to_a_python_caller(cpu_library):
    built = build.build_kernels(cuda=False, check=True, on_output=lambda line: None)
    assert [r.kind for r in built.libraries] == ["cpu"] and built.libraries[0].cached
    cpu = [c for c in built.checks if c.device == "cpu"]
    assert [c.op for c in cpu] == ["fast_hash", "lsh_cumulation", "lsh_weighted_cumulation", "lsh_backward"]
    assert all(c.passed and c.error <= 1e-5 for c in cpu)
    assert not [name for name in built.failed if name.startswith("cpu ")]
    assert build.build_kernels(cuda=False, check=False).checks == []


def test_self_check_of_a_damaged_library_fails_every_operator(monkeypatch, tmp_path, cpu_library):
    root, _, _ = _damaged_cache(tmp_path, cpu_library)
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(root))
    checks = [c for c in build.run_self_check() if c.device == "cpu"]
    assert len(checks) == 4
    assert all(not c.passed and c.error == float("inf") for c in checks)


def test_the_atomic_writer_leaves_no_temporary_file_when_the_write_fails(monkeypatch, tmp_path):
    target = tmp_path / "meta.json"
    target.write_text("old")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        build._write_atomic(target, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"] and target.read_text() == "old"
    monkeypatch.undo()
    with pytest.raises(TypeError):  # a failure while writing, not only while renaming
        build._write_atomic(target, 123)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"] and target.read_text() == "old"
    build._write_atomic(target, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"] and target.read_text() == "new"
