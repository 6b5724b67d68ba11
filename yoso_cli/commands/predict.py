"""`yoso predict`: run a fine-tuned model over JSON lines (or text lines) in a shell pipeline."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import fail


@contextlib.contextmanager
def _output(path: str):
    """stdout for ``-``; else a temporary file renamed to ``path`` when the command ends (even on exit 2)."""
    if path == "-":
        yield sys.stdout
        return
    target = Path(path)
    if not target.parent.is_dir():
        fail(f"--output {path!r}: directory {str(target.parent)!r} does not exist")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    f = open(tmp, "w")
    try:
        yield f
    except typer.Exit:
        f.close()
        os.replace(tmp, target)
        raise
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise
    f.close()
    os.replace(tmp, target)


def command(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="A model directory written by `yoso finetune` or `yoso pretrain` (OUTPUT_DIR/final).",
        ),
    ],
    input: Annotated[
        str,
        typer.Option(
            "--input",
            help="Input file of JSON lines (or plain text lines for "
            "classification and fill-mask); - reads stdin.",
        ),
    ] = "-",
    output: Annotated[
        str, typer.Option("--output", help="Output file of JSON lines; - writes stdout.")
    ] = "-",
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Records per batch. (default: 16)")
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Report a malformed line as a JSON error "
            "object on stderr and go on, instead of stopping with exit 2.",
        ),
    ] = False,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda. (default: auto)")] = None,
) -> None:
    """Answer each input line with one JSON line, in input order, copying "id".

    The task comes from the model's config. Inputs per task: classification {"text", ["text_pair"]}
    or a plain line -> {"label", "score"}; token-classification {"tokens"} or {"text"} -> {"tokens",
    "tags", "entities"}; qa {"question", "context"} -> {"answer", "start", "end", "score"};
    multiple-choice {"context", "choices"} -> {"choice", "scores"}; fill-mask {"text": "... <mask>
    ..."} or a plain line -> {"fills"}. A malformed line stops the command with exit 2 naming the
    line, after the answers of all earlier lines were written; --skip-invalid goes on instead.
    Lines that carry their label (a validation file: "label", "tags" or "answers") are answered
    the same; at the end the task's metrics over them go to stderr as {"metrics": {...}}.

    Examples:

      echo '{"question": "What is the pass key?", "context": "... The pass key is 12345. ..."}' |
        yoso predict --model runs/qa/final

      yoso predict --model runs/cls/final --input test.jsonl --output predictions.jsonl --batch-size 32

      cat texts.txt | yoso predict --model runs/cls/final --skip-invalid > labels.jsonl
    """
    import json

    from yoso_core.data import DataError
    from yoso_core.predict import PredictError, predict

    if input != "-" and not Path(input).is_file():
        fail(f"--input {input!r} does not exist")
    source = sys.stdin if input == "-" else open(input, encoding="utf-8")
    try:
        with _output(output) as sink:
            try:
                for result in predict(
                    model,
                    source,
                    batch_size if batch_size is not None else 16,
                    skip_invalid,
                    device=device or "auto",
                ):
                    sink.write(json.dumps(result) + "\n")
                    sink.flush()
            except (DataError, PredictError) as exc:
                sink.flush()
                fail(str(exc))
    finally:
        if source is not sys.stdin:
            source.close()
