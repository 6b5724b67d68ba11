"""Forward time of each CPU kernel variant this CPU runs, side by side in one run.

A process loads exactly one variant of the CPU library (``YOSO_CPU_ISA``), so every variant runs in
a child process of its own, on identical inputs (same seed), and the rounds are interleaved (one
timing of each variant in turn, ``--rounds`` times) so that the machine's load falls on all alike.
Times are the median and minimum over the rounds, each round the median of ``--repeats`` calls:

    python scripts/cpu_variants.py                    # 4,096 tokens, 1 x 12 heads x 64, 32 hashes
    python scripts/cpu_variants.py --seq-len 16384 --threads 1

Needs the kernels built (``yoso build-kernels``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, sys, time, torch
from yoso_core.attention import ops, hashing, yoso_attention
seq, heads, dim, num_hash, tau, repeats, threads = (int(a) for a in sys.argv[1:8])
torch.set_num_threads(threads)
ok, why = ops.load("cpu")
assert ok, why
gen = torch.Generator().manual_seed(seq)
q, k, v = (torch.randn(1, heads, seq, dim, generator=gen) for _ in range(3))
q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
bh = heads
diag = hashing.draw_fast_hash_diagonals(bh, dim, num_hash, tau, torch.device("cpu"), gen)
qf, kf, vf = (t.reshape(bh, seq, dim) for t in (q, k, v))
qc, kc = ops.fast_hash(qf, diag, num_hash, tau), ops.fast_hash(kf, diag, num_hash, tau)
mask = torch.ones(bh, seq)
calls = {
    "fast_hash (q and k)": lambda: (
        ops.fast_hash(qf, diag, num_hash, tau), ops.fast_hash(kf, diag, num_hash, tau)
    ),
    "lsh_cumulation": lambda: ops.lsh_cumulation(qc, kc, mask, mask, vf, tau),
    "yoso_attention forward": lambda: yoso_attention(
        q, k, v, num_hash=num_hash, hash_code_len=tau, backend="cpu",
        generator=torch.Generator().manual_seed(0),
    ),
}
out = {"variant": ops.loaded_variant()}
with torch.inference_mode():
    for name, call in calls.items():
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        out[name] = sorted(times)[len(times) // 2] * 1e3
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--num-hash", type=int, default=32)
    parser.add_argument("--hash-code-len", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args()

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from yoso_core.kernels import isa

    variants = isa.supported()
    child_args = [
        str(a)
        for a in (
            args.seq_len,
            args.heads,
            args.head_dim,
            args.num_hash,
            args.hash_code_len,
            args.repeats,
            args.threads,
        )
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, *child_args],
                capture_output=True,
                text=True,
                env={**env, isa.ENV_VAR: variant},
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"the {variant} variant failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            assert result.pop("variant") == variant
            rows[variant].append(result)
    names = list(rows[variants[0]][0])
    summary = {
        v: {
            n: {"median_ms": statistics.median(r[n] for r in rows[v]), "min_ms": min(r[n] for r in rows[v])}
            for n in names
        }
        for v in variants
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown CPU",
        )
        if Path("/proc/cpuinfo").exists()
        else "unknown CPU"
    )
    print(
        f"{model}; {args.seq_len} tokens, 1 x {args.heads} heads x {args.head_dim}, {args.num_hash} hashes, "
        f"tau {args.hash_code_len}, {args.threads} threads; ms, median (min) of {args.rounds} "
        "interleaved rounds"
    )
    width = max(len(n) for n in names)
    print(f"{'':{width}}  " + "  ".join(f"{v:>16}" for v in variants))
    best = variants[0]
    for name in names:
        cells = []
        for v in variants:
            cell = f"{summary[v][name]['median_ms']:.1f} ({summary[v][name]['min_ms']:.1f})"
            if v != best:
                cell += f" {summary[v][name]['median_ms'] / summary[best][name]['median_ms']:.2f}x"
            cells.append(f"{cell:>16}")
        print(f"{name:{width}}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
