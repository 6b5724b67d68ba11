"""Run `scripts/recall_probe.py` for several attentions and seeds on one budget; table and curves.

Each run is one child process on fresh `builtin:recall` records (nothing to memorise), with the same
model size, steps, batch, learning rate and seed; only the attention (and the fields a variant
names) differs. The table (markdown on stdout, JSON with --json) gives held-out query accuracy (mean
over seeds, with the range), training tokens/s, the child's peak resident memory and wall time;
``--plot`` draws accuracy against step and against training time.

    .venv/bin/python scripts/recall_study.py --seq-len 512 --steps 1500 --seeds 0 1 2 \\
        --variants softmax-conv sampled expectation --plot runs/recall-512.png
    .venv/bin/python scripts/recall_study.py --seq-len 2048 --variants sampled:num_hash=16 \\
        sampled:lsh_backward=false sampled:conv_window=0

A variant is ``ATTENTION[:field=value,...]``: ATTENTION is one of the probe's (``softmax``,
``softmax-conv``, ``sampled``, ``expectation``) and the fields are its options (``num_hash``,
``hash_code_len``, ``conv_window`` (0 = none), ``lsh_backward``, ``learning_rate``, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402
from compare import aggregate, markdown, plot  # noqa: E402

TASK = "recall"  # the table's only quality column is the queries' accuracy
compare.QUALITY[TASK] = ("token_accuracy",)
compare.CURVE[TASK] = "token_accuracy"
ATTENTIONS = ("softmax", "softmax-conv", "sampled", "expectation")
PROBE = Path(__file__).resolve().parent / "recall_probe.py"


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``sampled:num_hash=16,lsh_backward=false`` -> ("sampled", {"num_hash": 16, "lsh_backward": False})."""
    return compare.parse_variant(text, ATTENTIONS)


def probe_argv(attention: str, options: dict[str, Any]) -> list[str]:
    """The probe's command line for ``options`` (None leaves an option at the probe's default)."""
    argv = [sys.executable, str(PROBE), "--attention", attention]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or (key == "conv_window" and value == 0):
            continue
        if isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif isinstance(value, bool):
            argv.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            argv += [flag, str(value)]
    return argv


def read_run(lines: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The probe's header line and its evaluation rows."""
    rows = [json.loads(line) for line in lines if line.strip()]
    if not rows or "settings" not in rows[0]:
        raise ValueError("the probe wrote no header line")
    return rows[0], [r for r in rows[1:] if "step" in r]


def run_one(name: str, attention: str, options: dict[str, Any], threads: int, work: Path) -> dict[str, Any]:
    """Train one variant and seed in a child process; its row of the table, with its learning curve."""
    slug = name.replace(":", "_").replace(",", "_").replace("=", "-")
    out = work / f"{slug}-seed{options['seed']}.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else dict(os.environ)
    start = time.perf_counter()
    with open(out, "w") as stdout, open(out.with_suffix(".log"), "w") as stderr:
        proc = subprocess.Popen(probe_argv(attention, options), stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak resident set (KiB)
    row: dict[str, Any] = {
        "variant": name,
        "attention": attention,
        "seed": options["seed"],
        "wall_s": round(time.perf_counter() - start, 1),
    }
    code = os.waitstatus_to_exitcode(status)
    row = finished_row(row, out, peak_mib=round(usage.ru_maxrss / 1024, 1))
    if code != 0 and row["status"] == "ok":
        row.update(status="failed")
    if row["status"] != "ok":
        tail = out.with_suffix(".log").read_text().strip().splitlines()[-1:] or [f"exit code {code}"]
        row.update(error=tail[0])
    return row


def finished_row(row: dict[str, Any], out: Path, peak_mib: float | None = None) -> dict[str, Any]:
    """``row`` completed from a probe's output file (its last evaluation and its curve)."""
    try:
        header, evals = read_run(out.read_text().splitlines())
    except (OSError, ValueError) as exc:
        return dict(row, status="failed", error=str(exc))
    if not evals:
        return dict(row, status="failed", error=f"{out} holds no evaluation")
    last = evals[-1]
    row = dict(row)
    row.update(
        status="ok",
        steps=last["step"],
        hash_code_len=header.get("hash_code_len"),
        num_hash=header.get("num_hash"),
        chance=header["chance"],
        metrics={"token_accuracy": last["accuracy"], "loss": last["loss"]},
        tokens_per_second=last["train_tokens"] / last["train_seconds"] if last.get("train_tokens") else None,
        peak_mib=peak_mib,
        curve=[
            {"step": r["step"], "train_seconds": r["train_seconds"], "token_accuracy": r["accuracy"]}
            for r in evals
        ],
    )
    return row


def main(argv: list[str] | None = None) -> int:
    """Parse options, train every variant and seed, print the table, write JSON and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--pairs", type=int)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument(
        "--conv-window", type=int, default=3, help="YOSO-C's convolution for every variant (0 = none)"
    )
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument(
        "--warmup-stages", nargs="*", default=[], metavar="SEQ_LEN:STEPS[:BATCH]",
        help="the same short-to-long curriculum for every variant (see recall_probe.py)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=["softmax-conv", "sampled", "expectation"])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (give each --threads)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (0 = torch's default)")
    parser.add_argument("--json", help="also write the rows and settings to this JSON file")
    parser.add_argument("--plot", help="write the learning curves to this PNG file (needs matplotlib)")
    parser.add_argument("--plot-title", help="with --from-runs: the plot's title")
    parser.add_argument("--work-dir", help="keep the runs' outputs here (default: a temporary directory)")
    parser.add_argument(
        "--from-runs",
        nargs="+",
        metavar="NAME=FILE",
        help="train nothing: table and plot of probe outputs saved earlier (the probe's stdout)",
    )
    args = parser.parse_args(argv)
    if args.from_runs:
        return replot(args)
    variants = [(v, *parse_variant(v)) for v in args.variants]
    base = {
        key: getattr(args, key)
        for key in ("seq_len", "model", "pairs", "steps", "batch_size", "learning_rate", "warmup_steps")
    }
    base.update(conv_window=args.conv_window, eval_every=args.eval_every)
    if args.warmup_stages:
        base["warmup_stages"] = list(args.warmup_stages)
    jobs = [
        (name, attention, {**base, **fields, "seed": seed})
        for seed in args.seeds
        for name, attention, fields in variants
    ]
    with tempfile.TemporaryDirectory(prefix="yoso-recall-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(run_one, name, att, opts, args.threads, work) for name, att, opts in jobs]
            rows = []
            for (name, _, opts), future in zip(jobs, futures):
                rows.append(future.result())
                summary = {k: v for k, v in rows[-1].items() if k != "curve"}
                print(f"{name} (seed {opts['seed']}): {json.dumps(summary)}", file=sys.stderr, flush=True)
    ok = [r for r in rows if r["status"] == "ok"]
    chance = ok[0]["chance"] if ok else None
    seeds = ", ".join(map(str, args.seeds))
    title = (
        f"builtin:recall, {args.seq_len} tokens, model {args.model}, "
        f"conv_window {args.conv_window or 'none'}, "
        + (f"after {' '.join(args.warmup_stages)} (length:steps:batch), " if args.warmup_stages else "")
        + f"{args.steps} steps of batch {args.batch_size}, lr {args.learning_rate}, "
        f"seed{'s' if len(args.seeds) > 1 else ''} {seeds}"
        + (f"; chance {chance * 100:.1f}%" if chance else "")
    )
    print(f"{title}\n\n{markdown(aggregate(rows, TASK), TASK, args.seq_len)}")
    if args.plot:
        plot(rows, TASK, Path(args.plot), title)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp_path.write_text(json.dumps({"settings": vars(args), "chance": chance, "rows": rows}, indent=2))
        os.replace(tmp_path, path)
    return 0 if len(ok) == len(rows) else 1


def replot(args: argparse.Namespace) -> int:
    """The table and plot of earlier probe outputs, each named on the command line."""
    rows = []
    for item in args.from_runs:
        name, sep, file = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --from-runs takes NAME=FILE, got {item!r}")
        header_line = Path(file).read_text().splitlines()[:1] if Path(file).is_file() else []
        seed = json.loads(header_line[0])["settings"].get("seed", 0) if header_line else 0
        row = {"variant": name, "attention": name, "seed": seed, "wall_s": None}
        rows.append(finished_row(row, Path(file)))
    title = args.plot_title or "builtin:recall: saved probe runs"
    print(f"{title}\n\n{markdown(aggregate(rows, TASK), TASK, args.seq_len)}")
    if args.plot:
        plot(rows, TASK, Path(args.plot), title)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
