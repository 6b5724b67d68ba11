"""`make demo`'s measurements and summary: timed training steps per attention, demo-output/summary.json.

    python scripts/demo_summary.py step --attention softmax --seq-len 2048 ...   # one child: prints JSON
    python scripts/demo_summary.py baselines --seq-len 2048 ... --out FILE        # every attention
    python scripts/demo_summary.py summary --result R.json --answers A.jsonl ... --out summary.json

A timed step is what training does: forward, backward and an AdamW step on a batch of
``--batch-size`` random sequences of ``--seq-len`` tokens (a model of the demo's size and
vocabulary), a warm-up step, then ``--steps`` timed ones. Each attention runs in its own child
process, so its peak memory (the child's peak resident set) is its own and a softmax that runs out
of memory (killed, or an allocation failure) is reported as ``null`` instead of ending the demo.
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

ATTENTIONS = ("softmax", "expectation", "sampled")


def build_step_model(
    attention: str, *, size: str, seq_len: int, vocab_size: int, num_hash: int, hash_code_len: int
):
    """A QA model of ``size`` with ``attention`` (a RoBERTa with SDPA for softmax)."""
    import transformers

    from yoso_core.modeling import YosoForQuestionAnswering
    from yoso_core.sizes import size_config, softmax_config

    common = dict(vocab_size=vocab_size, max_position_embeddings=seq_len, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)  # fmt: skip
    if attention == "softmax":
        config = softmax_config(size, **common)
        return transformers.RobertaForQuestionAnswering._from_config(config, attn_implementation="sdpa")
    config = size_config(
        size,
        **common,
        use_expectation=attention == "expectation",
        num_hash=num_hash,
        hash_code_len=hash_code_len,
    )
    return YosoForQuestionAnswering(config)


def time_steps(
    attention: str,
    *,
    size: str = "tiny",
    seq_len: int = 2048,
    batch_size: int = 4,
    vocab_size: int = 2000,
    num_hash: int = 32,
    hash_code_len: int = 11,
    steps: int = 3,
    threads: int = 0,
) -> dict[str, Any]:
    """Time ``steps`` training steps (after one warm-up) in this process: tokens/s and seconds per step."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_step_model(
        attention,
        size=size,
        seq_len=seq_len,
        vocab_size=vocab_size,
        num_hash=num_hash,
        hash_code_len=hash_code_len,
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(seq_len)
    ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=gen)
    mask = torch.ones_like(ids)
    if batch_size > 1:  # as in training batches: the last window of a document is padded
        mask[-1, seq_len - seq_len // 4 :] = 0
        ids[-1, seq_len - seq_len // 4 :] = 1
    positions = torch.randint(0, seq_len, (batch_size,), generator=gen)

    def step() -> None:
        loss = model(
            input_ids=ids, attention_mask=mask, start_positions=positions, end_positions=positions
        ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = min(times)  # the least disturbed step: the machine may be shared
    kernel = None
    if attention == "sampled":
        from yoso_core.attention.backends import compiled_backend

        kernel = "compiled" if compiled_backend("cpu")[0] is not None else "pure-pytorch"
    return {
        "seconds_per_step": seconds,
        "tokens_per_second": int(mask.sum()) / seconds,
        "kernel": kernel,
    }


def run_child(attention: str, options: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``time_steps`` in a child process: its numbers plus ``peak_mib``; nulls and a status when it fails."""
    with tempfile.NamedTemporaryFile("w+", suffix=".json", delete=False) as out:
        result_path = out.name
    cmd = [sys.executable, __file__, "step", "--attention", attention, "--out", result_path]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    status = "ok"
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        status = f"timed out after {timeout:.0f} s"
    row: dict[str, Any] = {"attention": attention, "tokens_per_second": None, "peak_mib": None}
    try:
        data = json.loads(Path(result_path).read_text() or "null")
    except (OSError, ValueError):
        data = None
    finally:
        Path(result_path).unlink(missing_ok=True)
    if status == "ok" and (proc.returncode != 0 or not data):
        last = (err or "").strip().splitlines()[-1:] or [""]
        oom = proc.returncode in (-9, 137) or "memory" in last[0].lower()
        status = "out of memory" if oom else f"failed (exit code {proc.returncode}): {last[0]}"
    if status == "ok":
        row.update(data)  # peak_mib: the child's own peak resident set, measured by itself
    row["status"] = status
    row["wall_s"] = round(time.perf_counter() - start, 1)
    return row


def summary(
    *,
    result: dict[str, Any],
    attention: str,
    seq_len: int,
    hash_code_len: int | None,
    num_hash: int | None,
    baselines: dict[str, dict[str, Any]],
    predictions: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The demo's summary: the trained run (metrics, steps, tokens/s) and the baselines' step timings."""
    tokens_per_second = result.get("tokens_per_second")
    out = {
        "attention": attention,
        "seq_len": seq_len,
        "hash_code_len": hash_code_len,
        "num_hash": num_hash,
        "metrics": result.get("metrics", {}),
        "steps": result.get("steps"),
        "tokens_per_second": tokens_per_second,
    }
    for name, row in baselines.items():
        entry = {
            "tokens_per_second": row.get("tokens_per_second"),
            "peak_mib": row.get("peak_mib"),
            "status": row.get("status", "ok"),
        }
        if row.get("kernel"):
            entry["kernel"] = row["kernel"]
        out[name] = entry
    sampled = baselines.get(attention) or {}
    for name in ("softmax", "expectation"):
        theirs = (baselines.get(name) or {}).get("tokens_per_second")
        ours = sampled.get("tokens_per_second")
        if theirs and ours:
            out[name]["sampled_speedup"] = round(ours / theirs, 2)
        mem = (baselines.get(name) or {}).get("peak_mib")
        if mem and sampled.get("peak_mib"):
            out[name]["sampled_memory_ratio"] = round(sampled["peak_mib"] / mem, 3)
    if predictions is not None:
        out["predictions"] = predictions
    out.update(extra or {})
    return out


def write_json(data: Any, path: str | os.PathLike) -> None:
    """Write ``data`` as JSON atomically (temporary file, then rename)."""
    from yoso_core._io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def train_tokens_per_second(metrics_file: str | os.PathLike) -> float | None:
    """Mean training tokens/s of a run's metrics.jsonl, the first logged window (warm-up) left out."""
    rows = [json.loads(line) for line in Path(metrics_file).read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_second"] for r in rows if r.get("split") == "train" and "tokens_per_second" in r]
    if len(rates) > 1:
        rates = rates[1:]
    return sum(rates) / len(rates) if rates else None


def _step_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--num-hash", type=int, default=32)
    parser.add_argument("--hash-code-len", type=int, default=11)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    """The three subcommands (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    step = sub.add_parser("step")
    step.add_argument("--attention", choices=ATTENTIONS, required=True)
    step.add_argument("--out", required=True)
    _step_options(step)
    base = sub.add_parser("baselines")
    base.add_argument("--out", required=True)
    base.add_argument("--timeout", type=float, default=120.0)
    base.add_argument("--attentions", nargs="+", default=list(ATTENTIONS))
    base.add_argument("--rounds", type=int, default=2)
    _step_options(base)
    summ = sub.add_parser("summary")
    summ.add_argument("--result", required=True, help="the JSON line `yoso finetune` printed")
    summ.add_argument("--metrics", required=True, help="the run's metrics.jsonl")
    summ.add_argument("--baselines", required=True)
    summ.add_argument("--predictions", help="checked predictions (JSON list)")
    summ.add_argument("--attention", default="sampled")
    summ.add_argument("--seq-len", type=int, required=True)
    summ.add_argument("--hash-code-len", type=int)
    summ.add_argument("--num-hash", type=int)
    summ.add_argument("--extra", default="{}", help="more fields, as a JSON object")
    summ.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "step":
        options = {k: getattr(args, k) for k in ("size", "seq_len", "batch_size", "vocab_size", "num_hash",
                                                  "hash_code_len", "steps", "threads")}  # fmt: skip
        data = time_steps(args.attention, **options)
        import resource

        data["peak_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        write_json(data, args.out)
        return 0
    if args.command == "baselines":
        options = {k: getattr(args, k) for k in ("size", "seq_len", "batch_size", "vocab_size", "num_hash",
                                                  "hash_code_len", "steps", "threads")}  # fmt: skip
        rows: dict[str, dict[str, Any]] = {}
        # rounds interleave the attentions, so a busy moment of a shared machine hits them alike;
        # each keeps its fastest round and its largest peak
        for _ in range(args.rounds):
            for attention in args.attentions:
                row = run_child(attention, options, args.timeout)
                best = rows.get(attention)
                if best is None or (row["tokens_per_second"] or 0) > (best["tokens_per_second"] or 0):
                    peak = max(filter(None, (row["peak_mib"], best and best["peak_mib"])), default=None)
                    rows[attention] = {**row, "peak_mib": peak}
                elif row["peak_mib"] and best["peak_mib"]:
                    best["peak_mib"] = max(best["peak_mib"], row["peak_mib"])
        for attention, row in rows.items():
            rate = f"{row['tokens_per_second']:,.0f} tokens/s" if row["tokens_per_second"] else "-"
            mem = f"{row['peak_mib']:,.0f} MiB" if row["peak_mib"] else "-"
            print(f"  {attention:12s} {rate:>18s}  peak {mem:>10s}  {row['status']}", file=sys.stderr)
        write_json({"settings": options, "rows": rows}, args.out)
        return 0
    result = json.loads(Path(args.result).read_text().strip().splitlines()[-1])
    result["tokens_per_second"] = train_tokens_per_second(args.metrics)
    baselines = json.loads(Path(args.baselines).read_text())
    predictions = json.loads(Path(args.predictions).read_text()) if args.predictions else None
    data = summary(
        result=result,
        attention=args.attention,
        seq_len=args.seq_len,
        hash_code_len=args.hash_code_len,
        num_hash=args.num_hash,
        baselines=baselines["rows"],
        predictions=predictions,
        extra={"baseline_step": baselines["settings"], **json.loads(args.extra)},
    )
    write_json(data, args.out)
    print(json.dumps({k: data[k] for k in ("attention", "seq_len", "metrics", "tokens_per_second")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
