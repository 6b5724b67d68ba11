"""`yoso finetune`: train a task head (classification, token classification, QA, multiple choice)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import (
    DATA_PANEL,
    AccumulationOpt,
    AttentionOpt,
    BatchSizeOpt,
    ConfigOpt,
    ConvWindowOpt,
    DatasetConfigOpt,
    DatasetOpt,
    DeviceOpt,
    DropoutOpt,
    EvalEveryOpt,
    ExpectationOpt,
    GradientCheckpointingOpt,
    GradNormOpt,
    HashCodeLenOpt,
    LearningRateOpt,
    MaxStepsOpt,
    ModelOpt,
    NumHashOpt,
    NumTrainOpt,
    NumValidationOpt,
    OutputDirOpt,
    PrecisionOpt,
    ResumeOpt,
    SaveEveryOpt,
    SeedOpt,
    SeqLenOpt,
    TokenizerOpt,
    TrainFileOpt,
    ValidationFileOpt,
    VocabSizeOpt,
    WarmupOpt,
    WeightDecayOpt,
    run_training,
)


def command(
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="classification | token-classification | qa | multiple-choice (or `task:` in --config).",
        ),
    ] = None,
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
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride",
            help="QA: tokens of overlap between windows of a long context. (default: seq-len/4)",
            rich_help_panel=DATA_PANEL,
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
    gradient_checkpointing: GradientCheckpointingOpt = None,
    device: DeviceOpt = None,
    resume: ResumeOpt = None,
    attention: AttentionOpt = None,
    use_expectation: ExpectationOpt = None,
    num_hash: NumHashOpt = None,
    hash_code_len: HashCodeLenOpt = None,
    conv_window: ConvWindowOpt = None,
    dropout: DropoutOpt = None,
) -> None:
    """Fine-tune a YOSO model for a task, on local files or the task's built-in data set.

    --model is a pretrained directory (its tokenizer is reused) or tiny|small|base from scratch.
    Built-in sets: ListOps (classification), corpus tagging (token-classification), long-context
    pass-key retrieval (qa), corpus sentence completion (multiple-choice). Evaluates with the task's
    metrics; the final model in OUTPUT_DIR/final serves `yoso predict`. The result is one JSON line
    on stdout. Runs under `torchrun --nproc_per_node N`.

    Examples:

      yoso finetune --task qa --model small --seq-len 256 --max-steps 300 --output-dir runs/qa

      yoso finetune --task classification --model runs/mlm/final --train-file train.jsonl \\
        --validation-file dev.jsonl

      yoso finetune --task token-classification --model tiny --max-steps 200 --precision bf16

      yoso finetune --task qa --model tiny --attention softmax --seq-len 2048 --dataset builtin:facts

      yoso finetune --config run.yaml --resume auto
    """
    options = {k: v for k, v in locals().items() if k != "config"}
    from yoso_core.training import FINETUNE_TASKS

    run_training(config, options, tasks=FINETUNE_TASKS)
