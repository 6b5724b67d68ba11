"""`yoso pretrain`: masked-language-model pretraining; also defines the options shared with finetune."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import EXIT_FAILURE, fail

_DATA = "Data"
_MODEL = "Model"
_RUN = "Run"
_OPT = "Optimisation"

# The options common to `yoso pretrain` and `yoso finetune`. Every default is None, meaning "not
# given": the value then comes from --config or from TrainConfig's defaults.
ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="YAML file of options (keys as the long flags, with - or _); the command line wins.",
        rich_help_panel=_RUN,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="tiny|small|base (from scratch) or a model directory in transformers format. (default: small)",
        rich_help_panel=_MODEL,
    ),
]
TrainFileOpt = Annotated[
    str | None,
    typer.Option(
        "--train-file",
        help="Training data: json, jsonl, csv, parquet or txt. Default: the task's built-in set.",
        rich_help_panel=_DATA,
    ),
]
ValidationFileOpt = Annotated[
    str | None,
    typer.Option(
        "--validation-file",
        help="Validation data (default: a seeded 10% of the training data).",
        rich_help_panel=_DATA,
    ),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", help="A data set name on the Hugging Face hub (needs network).", rich_help_panel=_DATA
    ),
]
DatasetConfigOpt = Annotated[
    str | None, typer.Option("--dataset-config", help="Configuration of --dataset.", rich_help_panel=_DATA)
]
NumTrainOpt = Annotated[
    int | None, typer.Option("--num-train", help="Use at most N training records.", rich_help_panel=_DATA)
]
NumValidationOpt = Annotated[
    int | None,
    typer.Option("--num-validation", help="Use at most N validation records.", rich_help_panel=_DATA),
]
TokenizerOpt = Annotated[
    str | None,
    typer.Option(
        "--tokenizer",
        help="Tokenizer directory or hub name. Default: "
        "the model's, or a BPE trained on the data from scratch.",
        rich_help_panel=_DATA,
    ),
]
VocabSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--vocab-size",
        help="Vocabulary of a tokenizer trained from scratch. (default: 8000)",
        rich_help_panel=_DATA,
    ),
]
SeqLenOpt = Annotated[
    int | None,
    typer.Option(
        "--seq-len",
        help=(
            "Tokens per sequence (window). "
            "(default: a model directory's max_position_embeddings; 512 from scratch)"
        ),
        rich_help_panel=_DATA,
    ),
]
OutputDirOpt = Annotated[
    str | None,
    typer.Option(
        "--output-dir",
        help="Where metrics.jsonl, config.yaml, checkpoints/ and final/ go. (default: runs/TASK)",
        rich_help_panel=_RUN,
    ),
]
MaxStepsOpt = Annotated[
    int | None, typer.Option("--max-steps", help="Optimiser steps. (default: 1000)", rich_help_panel=_RUN)
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size", help="Sequences per process per micro-batch. (default: 8)", rich_help_panel=_OPT
    ),
]
AccumulationOpt = Annotated[
    int | None,
    typer.Option(
        "--gradient-accumulation-steps",
        help="Micro-batches per optimiser step. (default: 1)",
        rich_help_panel=_OPT,
    ),
]
LearningRateOpt = Annotated[
    float | None,
    typer.Option("--learning-rate", help="Peak AdamW learning rate. (default: 1e-4)", rich_help_panel=_OPT),
]
WarmupOpt = Annotated[
    int | None,
    typer.Option(
        "--warmup-steps",
        help="Linear warm-up steps, then linear decay. (default: 10% of --max-steps)",
        rich_help_panel=_OPT,
    ),
]
WeightDecayOpt = Annotated[
    float | None,
    typer.Option("--weight-decay", help="AdamW weight decay. (default: 0.01)", rich_help_panel=_OPT),
]
GradNormOpt = Annotated[
    float | None,
    typer.Option(
        "--max-grad-norm", help="Gradient clipping norm, 0 = off. (default: 1.0)", rich_help_panel=_OPT
    ),
]
EvalEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--eval-every",
        help="Evaluate every N steps (and at the end; 0 = only at the end). (default: 200)",
        rich_help_panel=_RUN,
    ),
]
SaveEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--save-every",
        help="Checkpoint every N steps (and at the end; 0 = only at the end). (default: 500)",
        rich_help_panel=_RUN,
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed", help="Seed of data, initialisation, dropout and hashes. (default: 0)", rich_help_panel=_RUN
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option("--precision", help="fp32 or bf16 (autocast). (default: fp32)", rich_help_panel=_OPT),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto, cpu or cuda. (default: auto)", rich_help_panel=_RUN)
]
ResumeOpt = Annotated[
    str | None,
    typer.Option(
        "--resume",
        help="A checkpoint directory, or 'auto' for the newest complete one in --output-dir.",
        rich_help_panel=_RUN,
    ),
]
AttentionOpt = Annotated[
    str | None,
    typer.Option(
        "--attention",
        help="sampled (YOSO, linear), expectation (YOSO-E, exact, quadratic) or softmax (the same "
        "architecture as a transformers RoBERTa model with SDPA: the baseline). (default: the model's; "
        "expectation from scratch)",
        rich_help_panel=_MODEL,
    ),
]
ExpectationOpt = Annotated[
    bool | None,
    typer.Option(
        "--use-expectation/--sampled",
        help="Deprecated: --attention expectation / --attention sampled.",
        hidden=True,
        rich_help_panel=_MODEL,
    ),
]
NumHashOpt = Annotated[
    int | None, typer.Option("--num-hash", help="Hash functions of sampled YOSO.", rich_help_panel=_MODEL)
]
HashCodeLenOpt = Annotated[
    str | None,
    typer.Option(
        "--hash-code-len",
        help="Bits per hash (tau), or auto. (default: the model's; from scratch auto = log2(seq-len) "
        "rounded, clamped to [8, 16]: 8 up to 362 tokens, 10 at 1024, 11 at 2048, 12 at 4096)",
        rich_help_panel=_MODEL,
    ),
]
ConvWindowOpt = Annotated[
    int | None, typer.Option("--conv-window", help="YOSO-C convolution window (odd).", rich_help_panel=_MODEL)
]
DropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--dropout",
        help="Hidden and attention dropout. (default: the model's, 0.1 from scratch)",
        rich_help_panel=_MODEL,
    ),
]


def run_training(config_path: str | None, options: dict[str, Any], **fixed: Any) -> None:
    """Merge the options, train, print the result as JSON on stdout; user errors exit 2."""
    import json

    from yoso_core.data import DataError
    from yoso_core.training import ConfigError, merge_config, train

    try:
        config = merge_config(config_path, options, **fixed)
        result = train(config)
    except (ConfigError, DataError) as exc:
        fail(str(exc))
    except FloatingPointError as exc:
        fail(str(exc), EXIT_FAILURE)
    if result.is_main:
        print(json.dumps(result.to_dict()))


def command(
    config: ConfigOpt = None,
    model: ModelOpt = None,
    train_file: TrainFileOpt = None,
    validation_file: ValidationFileOpt = None,
    dataset: DatasetOpt = None,
    dataset_config: DatasetConfigOpt = None,
    num_train: NumTrainOpt = None,
    num_validation: NumValidationOpt = None,
    tokenizer: TokenizerOpt = None,
    vocab_size: VocabSizeOpt = None,
    seq_len: SeqLenOpt = None,
    mlm_probability: Annotated[
        float | None,
        typer.Option(
            "--mlm-probability", help="Fraction of tokens masked. (default: 0.15)", rich_help_panel=_DATA
        ),
    ] = None,
    output_dir: OutputDirOpt = None,
    max_steps: MaxStepsOpt = None,
    batch_size: BatchSizeOpt = None,
    gradient_accumulation_steps: AccumulationOpt = None,
    learning_rate: LearningRateOpt = None,
    warmup_steps: WarmupOpt = None,
    weight_decay: WeightDecayOpt = None,
    max_grad_norm: GradNormOpt = None,
    eval_every: EvalEveryOpt = None,
    save_every: SaveEveryOpt = None,
    seed: SeedOpt = None,
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
    resume: ResumeOpt = None,
    attention: AttentionOpt = None,
    use_expectation: ExpectationOpt = None,
    num_hash: NumHashOpt = None,
    hash_code_len: HashCodeLenOpt = None,
    conv_window: ConvWindowOpt = None,
    dropout: DropoutOpt = None,
) -> None:
    """Pretrain a YOSO masked language model on text (default: the built-in English corpus).

    Trains from scratch (--model tiny|small|base, with a byte-level BPE tokenizer trained on the
    text unless --tokenizer is given) or continues a saved model. Progress goes to stderr; metrics
    to OUTPUT_DIR/metrics.jsonl; the result (final directory, steps, last evaluation: loss,
    perplexity, accuracy) as one JSON line on stdout. Runs under `torchrun --nproc_per_node N`.

    Examples:

      yoso pretrain --model tiny --seq-len 128 --max-steps 200 --output-dir runs/mlm

      yoso pretrain --model small --train-file corpus.txt --seq-len 1024 --attention sampled --num-hash 32

      yoso pretrain --config run.yaml --resume auto

      torchrun --nproc_per_node 2 $(which yoso) pretrain --model tiny --max-steps 100
    """
    options = {k: v for k, v in locals().items() if k != "config"}
    run_training(config, options, task="mlm")
