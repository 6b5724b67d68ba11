"""What a conversion takes and reports: the options, the report, the error, the file names it knows."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..devices import torch_dtypes
from ..saved import (
    ROBERTA_POSITION_OFFSET,
    TOKENIZER_FILES,  # noqa: F401  (re-exported: the files a conversion copies)
)

SOURCES = ("original", "roberta", "bert", "transformers")
DTYPES = torch_dtypes()
# Position ids of YOSO (and RoBERTa) start at 2: rows 0 and 1 of the table are never used.
POSITION_OFFSET = ROBERTA_POSITION_OFFSET
CHECKPOINT_SUFFIXES = (".model", ".cp", ".pt", ".pth", ".bin", ".ckpt")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class ConvertError(ValueError):
    """A conversion that cannot proceed; the message names the problem and the fix."""


@dataclass
class ConvertOptions:
    """What to convert and how; each field is the ``yoso convert`` option of the same name."""

    source: str = "transformers"
    max_position_embeddings: int | None = None
    use_expectation: bool | None = None
    num_hash: int | None = None
    hash_code_len: int | None = None
    conv_window: int | None = None
    num_attention_heads: int | None = None  # --from original, when the tensors do not tell
    dtype: str | None = None
    force: bool = False
    verify: bool = True


@dataclass
class ConvertReport:
    """What a conversion did, for the summary printed after it."""

    source: str
    src: str
    dst: str
    architecture: str = "YosoModel"
    mapped: int = 0
    dropped: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    config_changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    max_abs_diff: float | None = None

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        out = [
            f"converted {self.source} checkpoint {self.src} -> {self.dst} ({self.architecture})",
            f"tensors mapped: {self.mapped}",
        ]
        if self.dropped:
            out.append(f"dropped ({len(self.dropped)}): {', '.join(self.dropped)}")
        if self.initialised:
            out.append(f"newly initialised ({len(self.initialised)}): {', '.join(self.initialised)}")
        out += [f"config: {change}" for change in self.config_changes]
        out += self.notes
        if self.max_abs_diff is not None:
            out.append(f"verified against transformers: max |logits difference| = {self.max_abs_diff:.2e}")
        out.append(f"files: {', '.join(self.files)}")
        return out
