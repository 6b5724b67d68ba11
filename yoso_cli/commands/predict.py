"""`yoso predict`: run a fine-tuned model over JSON lines (or text lines) in a shell pipeline."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..defaults import library_defaults
from ..errors import fail

DEFAULTS = library_defaults("predict.py", "predict")


class _Stopped(BaseException):
    """SIGTERM (or SIGHUP) arrived: unwind like Ctrl-C does, so the output file keeps its answers."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the clean-up
    raise _Stopped(signum)


@contextlib.contextmanager
def _stop_on_signals():
    """Turn SIGTERM and SIGHUP into an exception while the block runs (main thread only)."""
    previous = {}
    try:
        for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if signum is not None:
                previous[signum] = signal.signal(signum, _raise_stopped)
    except ValueError:  # not the main thread: leave the handlers alone
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _sweep_stale(target: Path) -> None:
    """Remove temporary files of ``target`` left by a predict that was killed (SIGKILL)."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            stale.unlink(missing_ok=True)


def _check_output(path: str) -> None:
    """Refuse an --output that cannot be written, before any work: a directory, a missing or
    read-only directory."""
    if path == "-":
        return
    target = Path(path)
    if target.is_dir():
        fail(
            f"--output {path!r} is a directory; give a file name, e.g. {str(target / 'predictions.jsonl')!r}"
        )
    if not target.parent.is_dir():
        fail(f"--output {path!r}: directory {str(target.parent)!r} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        fail(f"--output {path!r}: directory {str(target.parent)!r} is not writable; choose another place")


@contextlib.contextmanager
def _output(path: str):
    """stdout for ``-``; else a ``LineFile``: a temporary file renamed to ``path`` when the command ends.

    Every exit path renames it (success, a bad line, a full disk, Ctrl-C, SIGTERM, a crash): the file
    then holds the answers of every line answered so far, complete lines only, as stdout would.
    """
    from yoso_core._io import LineFile

    if path == "-":
        yield _Stdout()
        return
    target = Path(path)
    _check_output(path)
    _sweep_stale(target)
    sink = LineFile(target)
    try:
        yield sink
    finally:
        sink.close()


class _Stdout:
    """stdout with LineFile's ``write_line``: a full disk behind ``> FILE`` is a StorageError."""

    def write_line(self, text: str) -> None:
        from yoso_core._io import StorageError

        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            raise  # the reader went away: yoso_cli.main ends the command quietly
        except OSError as exc:
            raise StorageError(
                f"cannot write the answers to stdout ({exc.strerror or exc}); free space or use --output"
            ) from exc


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file (through links too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


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
            "classification and fill-mask), or a .csv or .parquet table of records; - reads stdin.",
        ),
    ] = "-",
    output: Annotated[
        str, typer.Option("--output", help="Output file of JSON lines; - writes stdout.")
    ] = "-",
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help=f"Records per batch. (default: {DEFAULTS['batch_size']})"),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Report a malformed line as a JSON error "
            "object on stderr and go on, instead of stopping with exit 2.",
        ),
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help=f"auto, cpu or cuda. (default: {DEFAULTS['device']})")
    ] = None,
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
    --output FILE is written through a temporary file renamed at the end, on every exit: after
    Ctrl-C, SIGTERM, an error or a full disk FILE holds the answers written so far, as stdout
    would; it may not be the --input file. Classification and multiple-choice lines longer than
    the model are cut to fit, counted in a warning at the end.

    Examples:

      echo '{"question": "What is the pass key?", "context": "... The pass key is 12345. ..."}' |
        yoso predict --model runs/qa/final

      yoso predict --model runs/cls/final --input test.jsonl --output predictions.jsonl --batch-size 32

      cat texts.txt | yoso predict --model runs/cls/final --skip-invalid > labels.jsonl
    """
    import json

    from yoso_core._io import StorageError
    from yoso_core.data import DataError
    from yoso_core.predict import PredictError, load_predictor, open_input, predict

    # Everything that can be checked is checked before the model runs.
    if input != "-" and not Path(input).exists():
        fail(f"--input {input!r} does not exist")
    if input != "-" and not Path(input).is_file():
        fail(f"--input {input!r} is not a file; give a file of JSON lines (or .csv, .parquet) or - for stdin")
    if input != "-" and not os.access(input, os.R_OK):
        fail(f"--input {input!r} is not readable (permission denied)")
    _check_output(output)
    if input != "-" and output != "-" and _same_file(input, output):
        fail(f"--output {output!r} is the --input file, which writing it would destroy; give another file")
    size = batch_size if batch_size is not None else DEFAULTS["batch_size"]
    if size < 1:
        fail(f"--batch-size must be a positive integer, got {size}")
    try:
        predictor = load_predictor(model, device=device or DEFAULTS["device"])
        # Bytes: each line is decoded on its own, so bytes that are not UTF-8 make one malformed line.
        source, unit = (sys.stdin.buffer, "line") if input == "-" else open_input(input)
    except (DataError, PredictError) as exc:
        fail(str(exc))
    written = 0
    try:
        with _stop_on_signals(), _output(output) as sink:
            try:
                for result in predict(
                    predictor,
                    source,
                    size,
                    skip_invalid,
                    source=None if input == "-" else input,
                    unit=unit,
                ):
                    sink.write_line(json.dumps(result))
                    written += 1
            except (DataError, PredictError, StorageError) as exc:
                fail(str(exc))
    except (KeyboardInterrupt, _Stopped) as exc:
        signum = exc.signum if isinstance(exc, _Stopped) else signal.SIGINT
        where = "stdout" if output == "-" else repr(output)
        print(
            f"interrupted by {signal.Signals(signum).name}: {written} answer(s), those of the lines read "
            f"before it, are in {where}",
            file=sys.stderr,
        )
        raise typer.Exit(128 + signum) from None
    finally:
        if input != "-":
            source.close()  # a generator: closes its file
