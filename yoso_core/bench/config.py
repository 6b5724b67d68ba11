"""Configuration and rows: what to benchmark, the constants it names, one row per measurement.

Importing this module loads neither torch nor transformers, so the CLI can read ``BenchConfig``'s
defaults for its options at start-up; ``check`` and the code-length helpers import what they need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..devices import DTYPE_NAMES
from ..sizes import auto_hash_code_len  # the one rule, shared with training: log2(n) in [8, 16]

ATTENTION_IMPLS = ("sdpa", "yoso-e", "yoso-reference", "yoso-cpu", "yoso-cuda")
MODEL_IMPLS = ("softmax", "yoso", "transformers-yoso")
BASELINE = {"attention": "sdpa", "model": "softmax"}
MEMORY_MODES = ("auto", "process", "none")
MODEL_TYPES = ("yoso", "roberta")  # the config.json model types --model-level --model DIR times

MEMORY_CUDA = "cuda max_memory_allocated growth over one call"
MEMORY_CHILD = "child process: peak RSS growth over one call (VmHWM)"
MEMORY_CHILD_RU = "child process: peak RSS growth over one call (ru_maxrss; VmHWM reset unavailable)"

# Fields of a row, in the order of the CSV columns.
FIELDS = (
    "level",
    "impl",
    "seq_len",
    "mode",
    "status",
    "median_ms",
    "min_ms",
    "max_ms",
    "repeats",
    "speedup_vs_softmax",
    "peak_mem_mib",
    "memory_vs_softmax",
    "batch",
    "heads",
    "head_dim",
    "num_hash",
    "hash_code_len",
    "dtype",
    "device",
    "model",
    "memory_method",
    "note",
)


@dataclass
class BenchConfig:
    """What to benchmark; each field is the ``yoso bench`` option of the same name."""

    seq_len: list[int] = field(default_factory=lambda: [1024, 4096])
    batch: int = 1
    heads: int = 12
    head_dim: int = 64
    num_hash: int = 32
    hash_code_len: int | str = 8  # or "auto": round(log2(seq_len)) in [8, 16] per length, the paper's setting
    dtype: str = "float32"  # or several, comma-separated ("float32,bfloat16"), timed one after the other
    device: str = "cpu"
    backward: bool = False
    repeats: int = 5
    warmup: int = 1
    time_budget: float = 120.0  # seconds per row, warm-up and repeats together
    memory: str = "auto"  # auto: CUDA allocator stats on CUDA, a child process per row on CPU
    model_level: bool = False
    model: str = "base"  # a size of yoso_core.sizes.MODEL_SIZES or a model directory
    gradient_checkpointing: bool = False  # model level, --backward: recompute each layer in the backward
    impls: list[str] | None = None  # a subset of the implementations; None = all
    model_overrides: dict[str, Any] = field(default_factory=dict)  # YosoConfig fields, e.g. a small vocab

    def check(self) -> None:
        """Raise ValueError naming the option, the value and what would be valid."""
        import torch

        from ..config import hash_setting_error

        if not self.seq_len:
            raise ValueError("--seq-len needs at least one length, e.g. --seq-len 1024 4096")
        for n in self.seq_len:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"--seq-len values must be positive integers, got {n!r}")
        for name in ("batch", "heads", "head_dim", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"--warmup must be an integer >= 0, got {self.warmup!r}")
        if problem := hash_setting_error("num_hash", self.num_hash, label="--num-hash", allowed="in"):
            raise ValueError(problem)
        if self.hash_code_len != "auto" and (
            problem := hash_setting_error(
                "hash_code_len", self.hash_code_len, label="--hash-code-len", allowed="auto or an integer in"
            )
        ):
            raise ValueError(problem)
        for dtype in self.dtypes:
            if dtype not in DTYPE_NAMES:
                raise ValueError(
                    f"--dtype must be one of {', '.join(DTYPE_NAMES)} (or several, comma-separated), "
                    f"got {dtype!r}"
                )
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                "--device cuda needs a CUDA GPU and a CUDA build of torch; none is available here, "
                "use --device cpu"
            )
        if not self.time_budget > 0:
            raise ValueError(f"--time-budget must be a positive number of seconds, got {self.time_budget!r}")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"--memory must be one of {', '.join(MEMORY_MODES)}, got {self.memory!r}")
        known = MODEL_IMPLS if self.model_level else ATTENTION_IMPLS
        for impl in self.impls or ():
            if impl not in known:
                level = "model" if self.model_level else "attention"
                raise ValueError(
                    f"--impl {impl!r} is not one of the {level}-level implementations; choose from "
                    f"{', '.join(known)}"
                )
        if self.gradient_checkpointing and not (self.model_level and self.backward):
            raise ValueError(
                "--gradient-checkpointing applies to a training step: add --model-level --backward "
                "(attention alone and forward passes keep nothing to recompute)"
            )
        if self.model_level:
            from ..sizes import MODEL_SIZES

            if self.model not in MODEL_SIZES and not (Path(self.model) / "config.json").is_file():
                raise ValueError(
                    f"--model must be one of {', '.join(MODEL_SIZES)} or a directory with a "
                    f"config.json, got {self.model!r}"
                )
            try:
                model_config(self, max(self.seq_len))
            except (ValueError, TypeError, OSError) as exc:
                raise ValueError(f"--model {self.model}: {exc}") from exc

    @property
    def dtypes(self) -> list[str]:
        """The dtypes to time, in order: ``dtype`` split at commas."""
        return [part.strip() for part in str(self.dtype).split(",")]

    def code_len(self, seq_len: int) -> int:
        """The hash code length at ``seq_len``: the fixed one, or ``sizes.auto_hash_code_len`` for auto."""
        if self.hash_code_len != "auto":
            return int(self.hash_code_len)
        return auto_hash_code_len(seq_len)

    @property
    def mode(self) -> str:
        """``forward`` or ``forward+backward``, as the rows report it."""
        return "forward+backward" if self.backward else "forward"


@dataclass
class BenchRow:
    """One implementation at one sequence length: its timings, memory and ratios to softmax."""

    level: str
    impl: str
    seq_len: int
    mode: str
    status: str = "ok"  # ok | oom | timeout | skipped | error
    median_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    repeats: int = 0
    speedup_vs_softmax: float | None = None  # softmax median / this median: > 1 is faster
    peak_mem_mib: float | None = None
    memory_vs_softmax: float | None = None  # this peak / softmax peak: < 1 is smaller
    batch: int = 1
    heads: int = 0
    head_dim: int = 0
    num_hash: int | None = None
    hash_code_len: int | None = None
    dtype: str = "float32"
    device: str = "cpu"
    model: str | None = None
    memory_method: str | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as a flat dict with the keys of FIELDS."""
        return {name: getattr(self, name) for name in FIELDS}


@dataclass
class Timing:
    """Wall-clock seconds of the timed repeats of one implementation, and why it stopped if it did."""

    seconds: list[float] = field(default_factory=list)
    status: str = "ok"
    note: str = ""


def model_config(cfg: BenchConfig, max_len: int):
    """The YosoConfig of the benchmarked size: a named size or a directory's, positions for ``max_len``."""
    from ..config import YosoConfig
    from ..saved import ROBERTA_POSITION_OFFSET
    from ..sizes import MODEL_SIZES

    theirs = None if cfg.model in MODEL_SIZES else json.loads((Path(cfg.model) / "config.json").read_text())
    kind = theirs.get("model_type") if isinstance(theirs, dict) else None
    if theirs is not None and kind not in MODEL_TYPES:
        raise ValueError(
            f"its config.json {'is a ' + repr(kind) + ' model' if kind else 'names no model_type'}; the "
            "model-level bench times YOSO or RoBERTa encoders "
            f"(model_type {' or '.join(map(repr, MODEL_TYPES))}): give such a directory or a size "
            "(tiny, small, base)"
        )
    if theirs is None:
        base = dict(MODEL_SIZES[cfg.model])
    elif theirs.get("model_type") == "roberta":
        # a softmax baseline trained by `yoso finetune --attention softmax`: same sizes, its length
        # is shorter than its position table by RoBERTa's position offset
        keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        base = {k: theirs[k] for k in keep if k in theirs}
        base["max_position_embeddings"] = (
            int(theirs.get("max_position_embeddings", ROBERTA_POSITION_OFFSET)) - ROBERTA_POSITION_OFFSET
        )
    else:
        base = YosoConfig.from_pretrained(cfg.model).to_diff_dict()
    base = {k: v for k, v in base.items() if k not in ("architectures", "transformers_version", "model_type")}
    fields = {
        **base,
        **cfg.model_overrides,
        "use_expectation": False,
        "num_hash": cfg.num_hash,
        "hash_code_len": cfg.code_len(max_len),
    }
    fields["max_position_embeddings"] = max(int(fields.get("max_position_embeddings", 0)), max_len)
    return YosoConfig(**fields)
