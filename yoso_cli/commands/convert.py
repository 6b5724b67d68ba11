"""`yoso convert`: bring original, RoBERTa/BERT and transformers checkpoints into yoso's format."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..defaults import library_defaults
from ..errors import fail

DEFAULTS = library_defaults("convert/options.py", "ConvertOptions")


def command(
    src: str = typer.Argument(
        ...,
        help="Source checkpoint: a file (--from original), a model directory, or a hub name (when online).",
    ),
    dst: Path = typer.Argument(..., help="Output directory; must not exist unless --force."),
    source: str = typer.Option(
        DEFAULTS["source"], "--from", help="Kind of SRC: original, roberta, bert or transformers."
    ),
    max_position_embeddings: int | None = typer.Option(
        DEFAULTS["max_position_embeddings"],
        help="Extend (or cut) the position table to N positions, copying the learned rows in blocks.",
    ),
    use_expectation: bool | None = typer.Option(
        DEFAULTS["use_expectation"],
        "--use-expectation/--no-use-expectation",
        help="YOSO-E (exact, quadratic) or sampled YOSO.",
    ),
    num_hash: int | None = typer.Option(DEFAULTS["num_hash"], help="Hash functions of sampled YOSO."),
    hash_code_len: int | None = typer.Option(DEFAULTS["hash_code_len"], help="Bits per hash code."),
    conv_window: int | None = typer.Option(
        DEFAULTS["conv_window"], help="Add a YOSO-C convolution of this odd window (initialised to zero)."
    ),
    num_attention_heads: int | None = typer.Option(
        DEFAULTS["num_attention_heads"],
        help="Head count of an original checkpoint (its config's num_head) when it has no convolution "
        "to read it from.",
    ),
    dtype: str | None = typer.Option(
        DEFAULTS["dtype"], help="Cast the weights: float32, float16 or bfloat16."
    ),
    force: bool = typer.Option(
        DEFAULTS["force"], "--force", help="Replace the model in DST if it exists (its other files are kept)."
    ),
) -> None:
    """Convert a checkpoint into a yoso model directory (safetensors), printing what changed.

    Examples:

      yoso convert uw-madison/yoso-4096 yoso-4096 --from transformers

      yoso convert roberta-dir yoso-roberta --from roberta --max-position-embeddings 4096 --no-use-expectation

      yoso convert bert-dir yoso-from-bert --from bert --dtype bfloat16

      yoso convert cp-0249.model yoso-original --from original --num-attention-heads 8
    """
    from transformers.utils import logging as hf_logging

    from yoso_core._io import StorageError
    from yoso_core.convert import ConvertError, ConvertOptions, convert

    hf_logging.disable_progress_bar()

    opts = ConvertOptions(
        source=source,
        max_position_embeddings=max_position_embeddings,
        use_expectation=use_expectation,
        num_hash=num_hash,
        hash_code_len=hash_code_len,
        conv_window=conv_window,
        num_attention_heads=num_attention_heads,
        dtype=dtype,
        force=force,
    )
    try:
        report = convert(src, dst, opts)
    except (ConvertError, StorageError) as exc:
        fail(str(exc))
    except OSError as exc:  # a file system failure, not a usage error
        fail(f"{exc}", code=1)
    for line in report.lines():
        print(line, file=sys.stderr)
