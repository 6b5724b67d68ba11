"""Options shared by `yoso pretrain` and `yoso finetune`, and the runner both call.

Every default is None, meaning "not given": the value then comes from --config or from
TrainConfig's defaults. The "(default: ...)" in each help text is generated from TrainConfig's
field defaults, so the help cannot drift from what a run uses. They are read from the dataclass's
definition rather than by importing it: ``yoso_core.training`` loads torch, and ``--help`` must not.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .defaults import library_defaults
from .errors import EXIT_FAILURE, fail

TRAIN_DEFAULTS = library_defaults("training/config.py", "TrainConfig")


def show(value: Any) -> str:
    """A default as help text writes it: small floats in exponent form (``1e-4``), others as is."""
    if isinstance(value, float) and value and abs(value) < 1e-3:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return str(value)


def default(name: str) -> str:
    """``(default: X)`` for TrainConfig's field ``name``."""
    return f"(default: {show(TRAIN_DEFAULTS[name])})"


DATA_PANEL = "Data"
MODEL_PANEL = "Model"
RUN_PANEL = "Run"
OPT_PANEL = "Optimisation"

ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="YAML file of options (keys as the long flags, with - or _); the command line wins.",
        rich_help_panel=RUN_PANEL,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="tiny|small|base (from scratch) or a model directory in transformers format. "
        + default("model"),
        rich_help_panel=MODEL_PANEL,
    ),
]
TrainFileOpt = Annotated[
    str | None,
    typer.Option(
        "--train-file",
        help="Training data: json, jsonl, csv, parquet or txt. Default: the task's built-in set.",
        rich_help_panel=DATA_PANEL,
    ),
]
ValidationFileOpt = Annotated[
    str | None,
    typer.Option(
        "--validation-file",
        help="Validation data (default: a seeded 10% of the training data).",
        rich_help_panel=DATA_PANEL,
    ),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help="A data set name on the Hugging Face hub (needs network).",
        rich_help_panel=DATA_PANEL,
    ),
]
DatasetConfigOpt = Annotated[
    str | None,
    typer.Option("--dataset-config", help="Configuration of --dataset.", rich_help_panel=DATA_PANEL),
]
NumTrainOpt = Annotated[
    int | None,
    typer.Option("--num-train", help="Use at most N training records.", rich_help_panel=DATA_PANEL),
]
NumValidationOpt = Annotated[
    int | None,
    typer.Option("--num-validation", help="Use at most N validation records.", rich_help_panel=DATA_PANEL),
]
TokenizerOpt = Annotated[
    str | None,
    typer.Option(
        "--tokenizer",
        help="Tokenizer directory or hub name. Default: "
        "the model's, or a BPE trained on the data from scratch.",
        rich_help_panel=DATA_PANEL,
    ),
]
VocabSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--vocab-size",
        help="Vocabulary of a tokenizer trained from scratch. " + default("vocab_size"),
        rich_help_panel=DATA_PANEL,
    ),
]
SeqLenOpt = Annotated[
    int | None,
    typer.Option(
        "--seq-len",
        help=(
            "Tokens per sequence (window). "
            "(default: a model directory's max_position_embeddings; "
            f"{show(TRAIN_DEFAULTS['seq_len'])} from scratch)"
        ),
        rich_help_panel=DATA_PANEL,
    ),
]
OutputDirOpt = Annotated[
    str | None,
    typer.Option(
        "--output-dir",
        help="Where metrics.jsonl, config.yaml, checkpoints/ and final/ go. (default: runs/TASK)",
        rich_help_panel=RUN_PANEL,
    ),
]
MaxStepsOpt = Annotated[
    int | None,
    typer.Option("--max-steps", help="Optimiser steps. " + default("max_steps"), rich_help_panel=RUN_PANEL),
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        help="Sequences per process per micro-batch. " + default("batch_size"),
        rich_help_panel=OPT_PANEL,
    ),
]
AccumulationOpt = Annotated[
    int | None,
    typer.Option(
        "--gradient-accumulation-steps",
        help="Micro-batches per optimiser step. " + default("gradient_accumulation_steps"),
        rich_help_panel=OPT_PANEL,
    ),
]
LearningRateOpt = Annotated[
    float | None,
    typer.Option(
        "--learning-rate",
        help="Peak AdamW learning rate. " + default("learning_rate"),
        rich_help_panel=OPT_PANEL,
    ),
]
WarmupOpt = Annotated[
    int | None,
    typer.Option(
        "--warmup-steps",
        help="Linear warm-up steps, then linear decay. (default: 10% of --max-steps)",
        rich_help_panel=OPT_PANEL,
    ),
]
WeightDecayOpt = Annotated[
    float | None,
    typer.Option(
        "--weight-decay", help="AdamW weight decay. " + default("weight_decay"), rich_help_panel=OPT_PANEL
    ),
]
GradNormOpt = Annotated[
    float | None,
    typer.Option(
        "--max-grad-norm",
        help="Gradient clipping norm, 0 = off. " + default("max_grad_norm"),
        rich_help_panel=OPT_PANEL,
    ),
]
EvalEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--eval-every",
        help="Evaluate every N steps (and at the end; 0 = only at the end). " + default("eval_every"),
        rich_help_panel=RUN_PANEL,
    ),
]
SaveEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--save-every",
        help="Checkpoint every N steps (and at the end; 0 = only at the end). " + default("save_every"),
        rich_help_panel=RUN_PANEL,
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="Seed of data, initialisation, dropout and hashes. " + default("seed"),
        rich_help_panel=RUN_PANEL,
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision", help="fp32 or bf16 (autocast). " + default("precision"), rich_help_panel=OPT_PANEL
    ),
]
GradientCheckpointingOpt = Annotated[
    bool | None,
    typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Keep only each layer's input and recompute its forward in the backward: much less "
        "memory for long sequences, for a second forward pass. " + default("gradient_checkpointing"),
        rich_help_panel=OPT_PANEL,
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="auto, cpu or cuda. " + default("device"), rich_help_panel=RUN_PANEL),
]
ResumeOpt = Annotated[
    str | None,
    typer.Option(
        "--resume",
        help="A checkpoint directory, or 'auto' for the newest complete one in --output-dir.",
        rich_help_panel=RUN_PANEL,
    ),
]
AttentionOpt = Annotated[
    str | None,
    typer.Option(
        "--attention",
        help="sampled (YOSO, linear), expectation (YOSO-E, exact, quadratic) or softmax (the same "
        "architecture as a transformers RoBERTa model with SDPA: the baseline). (default: the model's; "
        "expectation from scratch)",
        rich_help_panel=MODEL_PANEL,
    ),
]
ExpectationOpt = Annotated[
    bool | None,
    typer.Option(
        "--use-expectation/--sampled",
        help="Deprecated: --attention expectation / --attention sampled.",
        hidden=True,
        rich_help_panel=MODEL_PANEL,
    ),
]
NumHashOpt = Annotated[
    int | None,
    typer.Option("--num-hash", help="Hash functions of sampled YOSO.", rich_help_panel=MODEL_PANEL),
]
HashCodeLenOpt = Annotated[
    str | None,
    typer.Option(
        "--hash-code-len",
        help="Bits per hash (tau), or auto. (default: the model's; from scratch auto = log2(seq-len) "
        "rounded, clamped to [8, 16]: 8 up to 362 tokens, 10 at 1024, 11 at 2048, 12 at 4096)",
        rich_help_panel=MODEL_PANEL,
    ),
]
ConvWindowOpt = Annotated[
    int | None,
    typer.Option("--conv-window", help="YOSO-C convolution window (odd).", rich_help_panel=MODEL_PANEL),
]
DropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--dropout",
        help="Hidden and attention dropout. (default: the model's, 0.1 from scratch)",
        rich_help_panel=MODEL_PANEL,
    ),
]


def run_training(config_path: str | None, options: dict[str, Any], **fixed: Any) -> None:
    """Merge the options, train, print the result as JSON on stdout; user errors exit 2."""
    import json

    from yoso_core._io import StorageError
    from yoso_core.data import DataError
    from yoso_core.training import ConfigError, merge_config, train

    try:
        config = merge_config(config_path, options, **fixed)
        result = train(config)
    except (ConfigError, DataError, StorageError) as exc:
        fail(str(exc))
    except FloatingPointError as exc:
        fail(str(exc), EXIT_FAILURE)
    if result.is_main:
        print(json.dumps(result.to_dict()))
