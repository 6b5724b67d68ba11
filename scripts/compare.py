"""Train softmax, YOSO-E and sampled YOSO on one built-in task at one length with the same budget.

Every variant is one `yoso finetune` (or `yoso pretrain`) run in its own child process, with the
same model size, data, seed, steps, batch and learning rate; only the attention differs. The table
(markdown on stdout, JSON with --json) gives the task's quality metrics on the validation set,
training tokens/s (mean over the logged windows after the first), peak memory of the child process
(resident set on CPU; the CUDA allocator's peak on a GPU) and wall time.

    .venv/bin/python scripts/compare.py                   # qa on builtin:facts, 256 tokens, 200 steps
    .venv/bin/python scripts/compare.py --seq-len 2048 --steps 400 --variants softmax \\
        sampled:hash_code_len=8 sampled:hash_code_len=11 --json runs/compare.json

A variant is ``ATTENTION[:field=value,...]`` with fields of `yoso finetune` (``hash_code_len``,
``num_hash``, ``conv_window``, ``model``, ``learning_rate``, ...), e.g. ``sampled:num_hash=64``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_VARIANTS = ("softmax", "expectation", "sampled")
QUALITY = {
    "qa": ("exact_match", "f1"),
    "classification": ("accuracy", "macro_f1"),
    "token-classification": ("f1",),
    "multiple-choice": ("accuracy",),
    "mlm": ("accuracy", "perplexity"),
}

_CHILD = """
import json, sys, time, torch
from yoso_core.training import merge_config, train
options, task, threads, out = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
if threads:
    torch.set_num_threads(threads)
start = time.perf_counter()
result = train(merge_config(None, options, task=task))
peak_cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
config = result.model.config
info = dict(result.to_dict(), seconds=time.perf_counter() - start, peak_cuda=peak_cuda,
            hash_code_len=getattr(config, "hash_code_len", None), num_hash=getattr(config, "num_hash", None),
            model_type=config.model_type)
with open(out, "w") as f:
    json.dump(info, f)
"""


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``sampled:hash_code_len=8,num_hash=64`` -> ("sampled", {"hash_code_len": 8, "num_hash": 64})."""
    attention, _, rest = text.partition(":")
    if attention not in DEFAULT_VARIANTS:
        raise SystemExit(
            f"error: variant {text!r}: the attention must be one of {', '.join(DEFAULT_VARIANTS)}"
        )
    fields: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: variant {text!r}: expected field=value, got {item!r}")
        try:
            fields[key.replace("-", "_")] = json.loads(value)
        except ValueError:
            fields[key.replace("-", "_")] = value
    return attention, fields


def tokens_per_second(metrics_file: Path) -> float | None:
    """Mean training tokens/s over the logged windows, the first (warm-up) left out when others exist."""
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_second"] for r in rows if r.get("split") == "train" and "tokens_per_second" in r]
    if len(rates) > 1:
        rates = rates[1:]
    return sum(rates) / len(rates) if rates else None


def run_variant(
    name: str,
    attention: str,
    fields: dict[str, Any],
    base: dict[str, Any],
    task: str,
    threads: int,
    work: Path,
) -> dict[str, Any]:
    """Train one variant in a child process; its row of the table."""
    out_dir = work / name.replace(":", "_").replace(",", "_").replace("=", "-")
    options = {**base, **fields, "attention": attention, "output_dir": str(out_dir)}
    result_file = work / f"{out_dir.name}.json"
    log_file = work / f"{out_dir.name}.log"
    start = time.perf_counter()
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(options), task, str(threads), str(result_file)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        # wait4 gives this child's own peak resident set (ru_maxrss, KiB on Linux)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    returncode = os.waitstatus_to_exitcode(status)
    peak_rss = usage.ru_maxrss / 1024
    row: dict[str, Any] = {"variant": name, "attention": attention, **fields, "wall_s": round(wall, 1)}
    if returncode != 0 or not result_file.is_file():
        tail = log_file.read_text().strip().splitlines()[-1:] or [f"exit code {returncode}"]
        row.update(status="failed", error=tail[0])
        return row
    info = json.loads(result_file.read_text())
    row.update(
        status="ok",
        steps=info["steps"],
        hash_code_len=info["hash_code_len"] if attention != "softmax" else None,
        num_hash=info["num_hash"] if attention == "sampled" else None,
        metrics=info["metrics"],
        train_loss=info["train_loss"],
        tokens_per_second=tokens_per_second(out_dir / "metrics.jsonl"),
        peak_mib=round(info["peak_cuda"] / 2**20, 1) if info["peak_cuda"] else round(peak_rss, 1),
    )
    return row


def markdown(rows: list[dict[str, Any]], task: str, seq_len: int) -> str:
    """The table as markdown."""
    quality = QUALITY.get(task, ())
    head = ["variant", "τ", "m", *quality, "loss", "tokens/s", "peak MiB", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['variant']} | {r['status']}: {r.get('error', '')} |" + " |" * (len(head) - 2))
            continue
        m = r["metrics"]
        cells = [
            r["variant"],
            str(r["hash_code_len"] or "-"),
            str(r["num_hash"] or "-"),
            *(
                f"{m[q]:.1f}" if q in ("exact_match", "f1") else f"{m.get(q, float('nan')):.3f}"
                for q in quality
            ),
            f"{m.get('loss', float('nan')):.3f}",
            f"{r['tokens_per_second']:,.0f}" if r["tokens_per_second"] else "-",
            f"{r['peak_mib']:,.0f}",
            f"{r['wall_s']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, train every variant, print the table (and write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="qa")
    parser.add_argument(
        "--dataset", default="builtin:facts", help="a built-in set (builtin:NAME); '' = default"
    )
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--num-train", type=int, default=2400)
    parser.add_argument("--num-validation", type=int, default=100)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch's default)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--json", help="also write the rows and settings to this JSON file")
    parser.add_argument("--work-dir", help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    variants = [(v, *parse_variant(v)) for v in args.variants]
    base = dict(
        model=args.model,
        seq_len=args.seq_len,
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        num_train=args.num_train,
        num_validation=args.num_validation,
        vocab_size=args.vocab_size,
        seed=args.seed,
        dropout=0.0,
        eval_every=0,
        save_every=0,
        log_every=max(1, min(50, args.steps // 4)),
        precision=args.precision,
    )
    if args.dataset:
        base["dataset"] = args.dataset
    with tempfile.TemporaryDirectory(prefix="yoso-compare-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for name, attention, fields in variants:
            print(f"training {name} ...", file=sys.stderr, flush=True)
            rows.append(run_variant(name, attention, fields, base, args.task, args.threads, work))
            print(f"  {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    title = (
        f"{args.task} on {args.dataset or 'the built-in set'}, {args.seq_len} tokens, model {args.model}, "
        f"{args.steps} steps of batch {args.batch_size}, lr {args.learning_rate}, seed {args.seed}"
    )
    print(f"{title}\n\n{markdown(rows, args.task, args.seq_len)}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp_path.write_text(json.dumps({"settings": {**vars(args), **base}, "rows": rows}, indent=2))
        os.replace(tmp_path, path)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
