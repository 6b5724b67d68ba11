"""Train softmax, YOSO-E and sampled YOSO on one built-in task at one length with the same budget.

Every variant is one `yoso finetune` (or `yoso pretrain`) run in its own child process, with the
same model size, data, seed, steps, batch and learning rate; only the attention differs. The table
(markdown on stdout, JSON with --json) gives the task's quality metrics on the validation set,
training tokens/s (mean over the logged windows after the first), peak memory of the child process
(resident set on CPU; the CUDA allocator's peak on a GPU) and wall time.

    .venv/bin/python scripts/compare.py                   # qa on builtin:facts, 256 tokens, 200 steps
    .venv/bin/python scripts/compare.py --task token-classification --seq-len 512 --seeds 0 1 2 \\
        --plot runs/recall-512.png                        # associative recall (builtin:recall)
    .venv/bin/python scripts/compare.py --seq-len 2048 --steps 400 --variants softmax \\
        sampled:hash_code_len=8 sampled:hash_code_len=11 --json runs/compare.json

A variant is ``ATTENTION[:field=value,...]`` with fields of `yoso finetune` (``hash_code_len``,
``num_hash``, ``conv_window``, ``model``, ``learning_rate``, ...), e.g. ``sampled:num_hash=64``.
"""

from __future__ import annotations

import argparse
import collections
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
    "token-classification": ("token_accuracy", "f1"),
    "multiple-choice": ("accuracy",),
    "mlm": ("accuracy", "perplexity"),
}

# The metric of the learning curves (the first quality column), per task.
CURVE = {task: names[0] for task, names in QUALITY.items()}
# The set each task is compared on when --dataset is not given.
DEFAULT_DATASETS = {"qa": "builtin:facts", "token-classification": "builtin:recall"}

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


def parse_variant(text: str, attentions: tuple[str, ...] = DEFAULT_VARIANTS) -> tuple[str, dict[str, Any]]:
    """``sampled:hash_code_len=8,num_hash=64`` -> ("sampled", {"hash_code_len": 8, "num_hash": 64})."""
    attention, _, rest = text.partition(":")
    if attention not in attentions:
        raise SystemExit(f"error: variant {text!r}: the attention must be one of {', '.join(attentions)}")
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


def curve(metrics_file: Path, metric: str) -> list[dict[str, float]]:
    """The learning curve of one run: ``{"step", "train_seconds", metric}`` per evaluation.

    ``train_seconds`` is the training time up to that step (evaluation left out), from the last
    training row logged at or before the evaluation.
    """
    seconds, points = 0.0, []
    for line in metrics_file.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("split") == "train":
            seconds = row.get("train_seconds", seconds)
        elif row.get("split") == "validation" and row.get(metric) is not None:
            points.append({"step": row["step"], "train_seconds": seconds, metric: row[metric]})
    return points


def run_variant(
    name: str,
    attention: str,
    fields: dict[str, Any],
    base: dict[str, Any],
    task: str,
    threads: int,
    work: Path,
) -> dict[str, Any]:
    """Train one variant in a child process; its row of the table (with its learning curve)."""
    slug = name.replace(":", "_").replace(",", "_").replace("=", "-")
    out_dir = work / f"{slug}-seed{base['seed']}"
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
    row: dict[str, Any] = {
        "variant": name,
        "attention": attention,
        **fields,
        "seed": base["seed"],
        "wall_s": round(wall, 1),
    }
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
        curve=curve(out_dir / "metrics.jsonl", CURVE[task]),
    )
    return row


def aggregate(rows: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """One row per variant: the mean over its seeds of every number, with the quality's min and max."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        runs = [r for r in rows if r["variant"] == name]
        ok = [r for r in runs if r["status"] == "ok"]
        if len(ok) < len(runs):
            out.append(next(r for r in runs if r["status"] != "ok"))
            continue
        row = dict(ok[0], seeds=[r["seed"] for r in ok])
        row["metrics"] = {
            key: sum(r["metrics"][key] for r in ok) / len(ok)
            for key in ok[0]["metrics"]
            if all(isinstance(r["metrics"].get(key), (int, float)) for r in ok)
        }
        row["spread"] = {
            q: (min(r["metrics"][q] for r in ok), max(r["metrics"][q] for r in ok))
            for q in QUALITY.get(task, ())
            if q in row["metrics"]
        }
        for key in ("tokens_per_second", "peak_mib", "wall_s"):
            values = [r[key] for r in ok if r.get(key) is not None]
            row[key] = sum(values) / len(values) if values else None
        out.append(row)
    return out


def plot(rows: list[dict[str, Any]], task: str, path: Path, title: str) -> None:
    """Learning curves (the task's first quality metric against step and against training time), one
    line per variant and seed; written atomically. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = CURVE[task]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours: dict[str, Any] = {}
    runs = collections.Counter(r["variant"] for r in rows)
    for row in rows:
        if row["status"] != "ok" or not row.get("curve"):
            continue
        label = None  # one legend entry per variant, on its first line
        if row["variant"] not in colours:
            label = row["variant"] + (f" ({runs[row['variant']]} seeds)" if runs[row["variant"]] > 1 else "")
        colour = colours.setdefault(row["variant"], f"C{len(colours)}")
        scale = _scale(metric, task)
        ys = [p[metric] * scale for p in row["curve"]]
        axes[0].plot([p["step"] for p in row["curve"]], ys, color=colour, label=label, marker=".")
        axes[1].plot([p["train_seconds"] / 60 for p in row["curve"]], ys, color=colour, marker=".")
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training time (minutes, evaluation left out)")
    axes[0].set_ylabel(f"validation {metric} (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _scale(metric: str, task: str) -> float:
    """100 for the fractions shown in % (qa's metrics are in % already; perplexity is no fraction)."""
    return 1.0 if task == "qa" or metric == "perplexity" else 100.0


def _quality_cell(metric: str, values: dict, spread: dict, task: str) -> str:
    """A quality number (the mean, with the range over seeds when there are several)."""
    scale = _scale(metric, task)
    if metric not in values:
        return "-"
    cell = f"{values[metric] * scale:.1f}"
    low, high = spread.get(metric, (None, None))
    if low is not None and high > low:
        cell += f" ({low * scale:.1f}-{high * scale:.1f})"
    return cell


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
        spread = r.get("spread", {})
        cells = [
            r["variant"],
            str(r["hash_code_len"] or "-"),
            str(r["num_hash"] or "-"),
            *(_quality_cell(q, m, spread, task) for q in quality),
            f"{m.get('loss', float('nan')):.3f}",
            f"{r['tokens_per_second']:,.0f}" if r["tokens_per_second"] else "-",
            f"{r['peak_mib']:,.0f}" if r.get("peak_mib") is not None else "-",
            f"{r['wall_s']:.0f}" if r.get("wall_s") is not None else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, train every variant, print the table (and write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="qa")
    parser.add_argument(
        "--dataset",
        default=None,
        help="a built-in set (builtin:NAME); default builtin:facts for qa, builtin:recall for "
        "token-classification, else the task's default set; '' = the task's default set",
    )
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=None, help="default: 10%% of the steps")
    parser.add_argument("--num-train", type=int, default=2400)
    parser.add_argument("--num-validation", type=int, default=100)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per variant and seed")
    parser.add_argument(
        "--eval-every", type=int, default=None, help="steps between evaluations (default: a tenth of --steps)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch's default)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--json", help="also write the rows and settings to this JSON file")
    parser.add_argument("--plot", help="write the learning curves to this PNG file (needs matplotlib)")
    parser.add_argument("--work-dir", help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.dataset is None:
        args.dataset = DEFAULT_DATASETS.get(args.task, "")
    variants = [(v, *parse_variant(v)) for v in args.variants]
    eval_every = args.eval_every or max(1, args.steps // 10)
    base = dict(
        model=args.model,
        seq_len=args.seq_len,
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        num_train=args.num_train,
        num_validation=args.num_validation,
        vocab_size=args.vocab_size,
        dropout=0.0,
        eval_every=eval_every,
        save_every=0,
        log_every=max(1, min(50, eval_every)),
        precision=args.precision,
    )
    if args.dataset:
        base["dataset"] = args.dataset
    with tempfile.TemporaryDirectory(prefix="yoso-compare-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for seed in args.seeds:
            for name, attention, fields in variants:
                print(f"training {name} (seed {seed}) ...", file=sys.stderr, flush=True)
                run_base = dict(base, seed=seed)
                rows.append(run_variant(name, attention, fields, run_base, args.task, args.threads, work))
                print(f"  {json.dumps({k: v for k, v in rows[-1].items() if k != 'curve'})}", file=sys.stderr)
    seeds = ", ".join(map(str, args.seeds))
    title = (
        f"{args.task} on {args.dataset or 'the built-in set'}, {args.seq_len} tokens, model {args.model}, "
        f"{args.steps} steps of batch {args.batch_size}, lr {args.learning_rate}, "
        f"seed{'s' if len(args.seeds) > 1 else ''} {seeds}"
    )
    chance = chance_level(args.task, args.dataset, args.seq_len)
    if chance is not None:
        title += f"; chance {chance * 100:.1f}%"
    print(f"{title}\n\n{markdown(aggregate(rows, args.task), args.task, args.seq_len)}")
    if args.plot:
        plot(rows, args.task, Path(args.plot), title)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        settings = {**vars(args), **base, "chance": chance}
        tmp_path.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))
        os.replace(tmp_path, path)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def chance_level(task: str, dataset: str, seq_len: int) -> float | None:
    """The accuracy of guessing, where the set defines one (the recall set: one over its values)."""
    from yoso_core.data.builtin import parse_builtin_name
    from yoso_core.data.recall import recall_shape

    name, params = parse_builtin_name(dataset.removeprefix("builtin:")) if dataset else ("", {})
    if task == "token-classification" and name == "recall":
        return recall_shape(seq_len, **params).chance
    return None


if __name__ == "__main__":
    sys.exit(main())
