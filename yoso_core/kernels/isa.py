"""The instruction-set variants of the CPU library, and which one this process loads.

The CPU kernels are written with GCC vector extensions and ``#pragma omp simd``, so their instruction
set comes from the compiler flags. One ``yoso build-kernels`` compiles the whole CPU library (schemas
and kernels, every source) once per variant, each with one set of flags:

- ``avx512``: ``-march=x86-64-v4`` (AVX-512 F/BW/CD/DQ/VL), 512-bit vectors preferred;
- ``avx2``: ``-march=x86-64-v3`` (AVX2, FMA, BMI1/2, F16C);
- ``baseline``: ``-march=x86-64`` (SSE2) on x86-64, the compiler's default elsewhere.

Only ``baseline`` is built on other machines (aarch64). A process loads exactly one variant, the best
that the running CPU supports, or the one ``$YOSO_CPU_ISA`` names. Each variant is a complete
library: no code compiled with one set of flags is ever linked with, or loaded beside, code
compiled with another, so an inline function emitted by the AVX-512 build cannot be called on an
AVX2 machine. Depends on nothing else in yoso.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

ENV_VAR = "YOSO_CPU_ISA"
ISAS = ("avx512", "avx2", "baseline")  # best first
# -Wno-psabi: the 64-byte vectors of the kernels are passed differently without AVX-512 (all within
# one library, so the note GCC prints for every such function is noise)
COMMON_FLAGS = ["-O3", "-fopenmp", "-Wno-psabi"]

# /proc/cpuinfo flags each variant's -march needs (x86-64-v2, -v3, -v4 as GCC defines them).
_V2 = ("cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3")
_V3 = (*_V2, "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")
_V4 = (*_V3, "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
REQUIRED_FLAGS: dict[str, tuple[str, ...]] = {"avx512": _V4, "avx2": _V3, "baseline": ()}
# What `yoso env` shows of the CPU.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
DESCRIPTIONS = {
    "avx512": "AVX-512 (x86-64-v4)",
    "avx2": "AVX2 (x86-64-v3)",
    "baseline": "portable baseline",
}


class IsaError(ValueError):
    """``$YOSO_CPU_ISA`` names an unknown variant, or one this machine cannot run."""


def is_x86_64(machine: str | None = None) -> bool:
    """Whether ``machine`` (default: this one's, ``platform.machine()``) is x86-64."""
    return (machine or platform.machine()).lower() in {"x86_64", "amd64", "x64"}


def variants(machine: str | None = None) -> tuple[str, ...]:
    """The variants built for ``machine`` (default: this one), best first."""
    return ISAS if is_x86_64(machine) else ("baseline",)


def compile_flags(isa: str, machine: str | None = None) -> list[str]:
    """The compiler flags of variant ``isa`` (every flag, common ones included)."""
    if isa not in ISAS:
        raise ValueError(f"unknown CPU variant {isa!r}; one of {', '.join(ISAS)}")
    if not is_x86_64(machine):
        return list(COMMON_FLAGS)
    march = {
        "avx512": ["-march=x86-64-v4", "-mprefer-vector-width=512"],
        "avx2": ["-march=x86-64-v3"],
        "baseline": ["-march=x86-64"],
    }[isa]
    return [*COMMON_FLAGS, *march]


def _torch_flags() -> set[str]:
    """The flags implied by torch's own CPU capability, where /proc/cpuinfo cannot be read."""
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # no torch, or one without the query: assume nothing
        return set()
    if capability.startswith("AVX512"):
        return set(_V4)
    if capability == "AVX2":
        return set(_V3)
    return set()


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """This CPU's feature flags: the ``flags`` line of ``/proc/cpuinfo`` (or of the text ``cpuinfo``).

    Where there is no such line (not Linux, not x86), the flags implied by torch's CPU capability.
    """
    text = cpuinfo
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == "flags":
            return set(value.split())
    return _torch_flags() if cpuinfo is None else set()


def missing_flags(isa: str, flags: set[str]) -> list[str]:
    """The flags variant ``isa`` needs that ``flags`` lacks (empty: it runs)."""
    return [flag for flag in REQUIRED_FLAGS[isa] if flag not in flags]


def supported(flags: set[str] | None = None, machine: str | None = None) -> list[str]:
    """The variants built for ``machine`` that a CPU with ``flags`` runs, best first."""
    flags = cpu_flags() if flags is None else flags
    return [isa for isa in variants(machine) if not missing_flags(isa, flags)]


def select(flags: set[str] | None = None, override: str | None = None, machine: str | None = None) -> str:
    """The variant to load: ``override`` (default ``$YOSO_CPU_ISA``) or the best one ``flags`` supports.

    Raises IsaError naming the problem and the fix when the override is unknown, not built for this
    machine, or needs instructions the CPU lacks.
    """
    flags = cpu_flags() if flags is None else flags
    if override is None:
        override = os.environ.get(ENV_VAR, "")
    choice = override.strip().lower()
    runnable = supported(flags, machine)
    if choice in ("", "auto"):
        return runnable[0]
    built = variants(machine)
    if choice not in ISAS:
        raise IsaError(
            f"{ENV_VAR}={override!r} is not a CPU kernel variant; set it to one of "
            f"{', '.join(ISAS)} or auto (or unset it to pick the best one this CPU runs)"
        )
    if choice not in built:
        raise IsaError(
            f"{ENV_VAR}={choice} asks for {DESCRIPTIONS[choice]} kernels, which are not built on "
            f"{machine or platform.machine()} (only {', '.join(built)}); unset {ENV_VAR} or set it to "
            f"{', '.join(built)}"
        )
    lacking = missing_flags(choice, flags)
    if lacking:
        raise IsaError(
            f"{ENV_VAR}={choice} asks for the {DESCRIPTIONS[choice]} CPU kernels, but this CPU lacks "
            f"{', '.join(lacking)}; unset {ENV_VAR} or set it to {' or '.join(runnable)} "
            "(what this CPU runs)"
        )
    return choice


def report(flags: set[str] | None = None) -> dict:
    """What ``yoso env`` shows: the CPU's flags, the variants it runs, and the choice (or why none)."""
    flags = cpu_flags() if flags is None else flags
    try:
        selected, error = select(flags), None
    except IsaError as exc:
        selected, error = None, str(exc)
    try:
        import torch

        torch_capability = torch.backends.cpu.get_cpu_capability()
    except Exception:
        torch_capability = None
    return {
        "flags": {flag: flag in flags for flag in REPORTED_FLAGS},
        "built_variants": list(variants()),
        "supported": supported(flags),
        "override": os.environ.get(ENV_VAR) or None,
        "selected": selected,
        "error": error,
        "torch_capability": torch_capability,
    }
