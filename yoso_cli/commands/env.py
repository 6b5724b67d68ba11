"""`yoso env`: versions, threads, GPUs, and which compiled kernels are built and load."""

from __future__ import annotations

import json

import typer


def command(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Report Python, torch (and its CUDA), transformers, CPU threads, GPUs, nvcc and the compiled kernels.

    Attach its output to bug reports.

    Examples:

        yoso env

        yoso env --json | jq .kernels
    """
    from rich.console import Console
    from rich.table import Table

    from yoso_core.env import environment_report

    report = environment_report()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console = Console(stderr=True)
    table = Table(title="yoso environment", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    cuda = f" (CUDA {report['torch_cuda']})" if report["torch_cuda"] else " (CPU only)"
    table.add_row("python", f"{report['python']} on {report['platform']}")
    table.add_row("yoso", str(report["yoso"]))
    table.add_row("torch", f"{report['torch']}{cuda}")
    table.add_row("transformers", str(report["transformers"]))
    table.add_row("CPU threads", f"{report['torch_threads']} used by torch, {report['cpu_count']} CPUs")
    isa = report["cpu_isa"]
    flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in isa["flags"].items())
    runs = ", ".join(isa["supported"])
    if isa["error"]:
        chosen = f"[red]none[/]: {isa['error']}"
    else:
        how = f"forced by YOSO_CPU_ISA={isa['override']}" if isa["override"] else "the best this CPU runs"
        chosen = f"{isa['selected']} ({how})"
    table.add_row("CPU instruction sets", f"{flags}\nruns variants: {runs}\nCPU kernel path: {chosen}")
    gpus = [
        f"{g['index']}: {g['name']} (sm {g['capability']}, {g['memory_gib']} GiB)" for g in report["gpus"]
    ]
    table.add_row("GPUs", "\n".join(gpus) or "none visible")
    nvcc = report["nvcc"]
    table.add_row(
        "nvcc", f"{nvcc['path']} ({nvcc['version']})" if nvcc else "not found (CUDA kernels cannot be built)"
    )
    cache = f"{report['kernel_root']}\nkey {report['kernel_key']}"
    if report["kernel_root_error"]:
        cache += f"\n[red]unusable[/]: {report['kernel_root_error']}"
    table.add_row("kernel cache", cache)
    for kind, info in report["kernels"].items():
        if not info["built"]:
            state = "[yellow]not built[/] (run `yoso build-kernels`)"
        elif not info["intact"]:
            state = f"[red]damaged, not loaded[/]: {info['error']}"
        elif info["loads"]:
            variant = f" ({info['variant']} of {', '.join(info['variants'])})" if info.get("variant") else ""
            state = (
                f"[green]built, loads[/]{variant} archs {info['archs']}, {info['built_at']}\n{info['path']}"
            )
        else:
            state = f"[red]built, fails to load[/]: {info['error']}"
        table.add_row(f"{kind} kernels", state)
    if report["other_builds"]:
        table.add_row(
            "other builds", "\n".join(report["other_builds"]) + "\n(other torch versions or sources)"
        )
    console.print(table)
