"""The CPU library's instruction-set variants: which one is chosen, the override, and each variant's code.

The variant choice is tested on fake CPU flag sets (every machine this project meets); every variant
this CPU runs is checked against the pure-PyTorch reference in a child process of its own (the
self-check of `yoso build-kernels`), and the AVX2 and baseline files are disassembled to show that
they hold no AVX-512 instruction.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from yoso_cli.main import app
from yoso_core.attention import backends, ops
from yoso_core.kernels import cache, isa

V2 = "fpu sse sse2 cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3"
V3 = V2 + " avx avx2 bmi1 bmi2 f16c fma abm movbe xsave"
V4 = V3 + " avx512f avx512bw avx512cd avx512dq avx512vl"
# Sapphire Rapids, Zen 4 EPYC, an AVX2 laptop, a pre-AVX server, a Skylake-X without avx512_bf16
CPUS = {
    "intel-amx": (V4 + " avx512_bf16 amx_bf16 amx_tile amx_int8", "avx512", ["avx512", "avx2", "baseline"]),
    "epyc-zen4": (V4 + " avx512_bf16", "avx512", ["avx512", "avx2", "baseline"]),
    "laptop-avx2": (V3, "avx2", ["avx2", "baseline"]),
    "old-sse4": (V2, "baseline", ["baseline"]),
    "skylake-x": (V4, "avx512", ["avx512", "avx2", "baseline"]),
}


def flags(line: str) -> set[str]:
    return set(line.split())


@pytest.mark.parametrize("name", sorted(CPUS))
def test_the_best_variant_a_cpu_runs_is_chosen(name):
    line, best, runs = CPUS[name]
    assert isa.select(flags(line), override="", machine="x86_64") == best
    assert isa.supported(flags(line), machine="x86_64") == runs
    for forced in runs:  # any variant the CPU runs can be forced
        assert isa.select(flags(line), override=forced, machine="x86_64") == forced


def test_an_avx2_cpu_without_one_v3_flag_gets_the_baseline():
    assert isa.select(flags(V3.replace(" fma", "")), override="auto", machine="x86_64") == "baseline"


def test_other_architectures_build_and_choose_only_the_baseline():
    assert isa.variants("aarch64") == ("baseline",)
    assert isa.select(set(), override="", machine="aarch64") == "baseline"
    assert not any(f.startswith("-m") for f in isa.compile_flags("baseline", "aarch64"))
    with pytest.raises(isa.IsaError, match="not built on aarch64"):
        isa.select(set(), override="avx2", machine="aarch64")


def test_forcing_a_variant_the_cpu_lacks_names_the_problem_and_the_fix():
    with pytest.raises(isa.IsaError) as raised:
        isa.select(flags(V3), override="avx512", machine="x86_64")
    message = str(raised.value)
    assert "YOSO_CPU_ISA=avx512" in message and "lacks avx512f" in message
    assert "unset YOSO_CPU_ISA or set it to avx2 or baseline" in message
    with pytest.raises(
        isa.IsaError, match="is not a CPU kernel variant; set it to one of avx512, avx2, baseline"
    ):
        isa.select(flags(V4), override="sse9", machine="x86_64")


def test_the_override_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("YOSO_CPU_ISA", "baseline")
    assert isa.select(flags(V4), machine="x86_64") == "baseline"
    monkeypatch.setenv("YOSO_CPU_ISA", "AVX2")
    assert isa.select(flags(V4), machine="x86_64") == "avx2"


def test_cpu_flags_come_from_the_cpuinfo_flags_line():
    text = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512f\nbugs\t\t: spectre\n"
    assert isa.cpu_flags(text) == {"fpu", "sse2", "avx2", "avx512f"}
    assert isa.cpu_flags("processor\t: 0\nFeatures\t: fp asimd\n") == set()


def test_the_variants_compile_for_their_instruction_sets():
    assert "-march=x86-64-v4" in isa.compile_flags("avx512", "x86_64")
    assert "-march=x86-64-v3" in isa.compile_flags("avx2", "x86_64")
    assert "-march=x86-64" in isa.compile_flags("baseline", "x86_64")
    for variant in isa.ISAS:
        assert "-march=native" not in isa.compile_flags(variant, "x86_64")


def test_the_cache_key_does_not_depend_on_the_cpu(monkeypatch):
    """Two CPUs (one with AVX-512, one with AVX2 only) share one build; each picks its own variant."""
    real = Path.read_text
    keys, chosen = [], []
    for line in (CPUS["intel-amx"][0], CPUS["laptop-avx2"][0]):
        fake = f"processor\t: 0\nflags\t\t: {line}\n"
        monkeypatch.setattr(
            Path,
            "read_text",
            lambda self, *a, _f=fake, **k: _f if str(self) == "/proc/cpuinfo" else real(self, *a, **k),
        )
        keys.append(cache.build_key())
        chosen.append(isa.select(override="") if isa.is_x86_64() else "-")
    assert keys[0] == keys[1]
    if isa.is_x86_64():
        assert chosen == ["avx512", "avx2"]  # the fake cpuinfo was read


# ---------------------------------------------------------------------------------------------- the override


def test_an_unusable_override_is_exit_2_for_commands_and_reported_by_env(monkeypatch, tmp_path):
    monkeypatch.setattr(isa, "cpu_flags", lambda cpuinfo=None: flags(V3))
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path))
    monkeypatch.setenv("YOSO_CPU_ISA", "avx512" if isa.is_x86_64() else "avx2")
    runner = CliRunner()
    for args in (["build-kernels", "--no-cuda"], ["bench", "--seq-len", "64"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "error: YOSO_CPU_ISA=" in result.output and "unset YOSO_CPU_ISA" in result.output
        assert "Traceback" not in result.output
    monkeypatch.setattr(ops, "_status", {})
    report = runner.invoke(app, ["env", "--json"])
    assert report.exit_code == 0, report.output
    data = json.loads(report.stdout)
    assert data["cpu_isa"]["selected"] is None and "YOSO_CPU_ISA=" in data["cpu_isa"]["error"]
    assert not data["kernels"]["cpu"]["loads"] and "YOSO_CPU_ISA=" in data["kernels"]["cpu"]["error"]


def test_an_unusable_override_is_an_error_not_a_silent_fallback(monkeypatch):
    monkeypatch.setattr(isa, "cpu_flags", lambda cpuinfo=None: flags(V2))
    monkeypatch.setenv("YOSO_CPU_ISA", "avx2")
    monkeypatch.setattr(ops, "_status", {})
    ok, why = ops.load("cpu")
    assert not ok and "YOSO_CPU_ISA=avx2" in why
    with pytest.raises(isa.IsaError, match="YOSO_CPU_ISA=avx2"):
        backends.resolve_backend("auto", torch.device("cpu"))


def test_env_reports_the_cpu_and_the_variant_in_use(cpu_library):
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    cpu_isa = report["cpu_isa"]
    assert set(cpu_isa["flags"]) == {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert cpu_isa["selected"] == isa.select() and cpu_isa["supported"] == isa.supported()
    kernels = report["kernels"]["cpu"]
    assert kernels["loads"] and kernels["variant"] == isa.select()
    assert kernels["variants"] == list(isa.variants())
    table = CliRunner().invoke(app, ["env"])
    assert "CPU kernel path" in table.output and "avx512_bf16" in table.output


# -------------------------------------------------------------------------------------- the built variants

_CHILD = """
import json
from pathlib import Path
from yoso_core.attention import ops, selfcheck
ok, why = ops.load("cpu")
maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
mapped = sorted({line.split("/")[-1] for line in maps.splitlines() if "yoso_cpu" in line})
results = [dict(op=c.op, error=c.error, passed=c.passed) for c in selfcheck.self_check(["cpu"])]
out = {"ok": ok, "why": why, "variant": ops.loaded_variant(), "mapped": mapped, "checks": results}
print(json.dumps(out))
"""


@pytest.mark.parametrize("variant", isa.ISAS)
def test_every_variant_this_cpu_runs_equals_the_reference(variant, cpu_library):
    """Each variant, forced in a process of its own, loads alone and passes the self-check (1e-5 relative)."""
    if variant not in isa.supported():
        pytest.skip(
            f"this CPU cannot run the {variant} variant "
            f"(it lacks {', '.join(isa.missing_flags(variant, isa.cpu_flags()))})"
        )
    env = {**os.environ, "YOSO_CPU_ISA": variant, "YOSO_KERNEL_DIR": str(cache.kernel_root())}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"], result["why"]
    assert result["variant"] == variant
    if sys.platform.startswith("linux"):
        assert result["mapped"] == [f"yoso_cpu_{variant}.so"]  # exactly one variant in the process
    assert [c["op"] for c in result["checks"]] == [
        "fast_hash",
        "lsh_cumulation",
        "lsh_weighted_cumulation",
        "lsh_backward",
    ]
    assert all(c["passed"] and c["error"] <= 1e-5 for c in result["checks"]), result["checks"]


def _disassembly(path: Path) -> str:
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed, so the variants cannot be disassembled")
    return subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


@pytest.mark.skipif(not isa.is_x86_64(), reason="only x86-64 builds the AVX2 and AVX-512 variants")
def test_the_avx2_and_baseline_variants_hold_no_avx512_instruction(cpu_library):
    key = cpu_library.path.parent.name
    texts = {variant: _disassembly(cache.library_path("cpu", key, variant)) for variant in isa.ISAS}
    for variant in ("avx2", "baseline"):
        assert "%zmm" not in texts[variant], f"the {variant} variant uses AVX-512 registers"
    assert "%ymm" not in texts["baseline"]
    assert "%ymm" in texts["avx2"]  # the check can see vector registers: AVX2 uses its 256-bit ones
    assert "%zmm" in texts["avx512"]  # and the AVX-512 variant does use 512-bit registers


def test_metadata_records_every_variant(cpu_library):
    meta = cache.read_metadata("cpu", cpu_library.path.parent.name)
    assert sorted(meta["variants"]) == sorted(isa.variants())
    for variant, record in meta["variants"].items():
        path = cache.library_path("cpu", cpu_library.path.parent.name, variant)
        assert record["library"] == path.name and record["size"] == path.stat().st_size
        assert record["flags"] == isa.compile_flags(variant)
        assert cache.verify_library("cpu", cpu_library.path.parent.name, variant) is None
