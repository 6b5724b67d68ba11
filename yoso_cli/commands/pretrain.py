"""`yoso pretrain`: masked-language-model pretraining (shared options: yoso_cli/options.py)."""

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
    default,
    run_training,
)


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
            "--mlm-probability",
            help="Fraction of tokens masked. " + default("mlm_probability"),
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
