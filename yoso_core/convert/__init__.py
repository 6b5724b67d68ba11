"""Checkpoint conversion: bring YOSO and softmax-encoder checkpoints into this package's format.

Sources (``--from``):

- ``original``: a torch checkpoint of the authors' training code (the state dict, possibly nested
  under ``"model_state_dict"``), in either of its two key layouts (``ORIGINAL_ENCODERS_RULES``,
  ``ORIGINAL_TRANSFORMER_RULES``). The tensors fix the vocabulary, hidden, intermediate and
  position sizes, the layer count and the token-type count; the head count is read from the
  YOSO-C convolution when there is one and must be given otherwise.
- ``roberta`` / ``bert``: warm-start from a softmax encoder (transformers' RobertaModel,
  RobertaForMaskedLM, BertModel, BertForMaskedLM, ...): same embeddings and layers, attention
  swapped for YOSO, YOSO fields from the options.
- ``transformers``: a transformers YOSO checkpoint (directory or hub name); the result is checked
  against transformers' own forward pass.

Every key map is a declarative table of ``(source key, target key)`` pairs, ``{}`` standing for the
layer index and ``None`` for a key that is dropped. Conversion fails, naming the keys, on any
source key no rule covers, any target key nothing provides, and any shape that does not fit.
The result is written into a temporary directory beside DST and renamed into place. ``--force``
replaces only what a conversion would have written: an empty directory or a model directory
(``config.json`` and weights), never one that holds SRC; a DST that is a symbolic link keeps its
link, and the directory it points to is replaced.

The package: ``options`` (ConvertOptions, ConvertReport, ConvertError, the file names),
``keymaps`` (the tables and applying them), ``sources`` (reading each source) and ``target``
(building, checking and writing the YOSO model, and ``convert`` itself). Every public name is
importable from ``yoso_core.convert``.
"""

from __future__ import annotations

from .keymaps import (
    BERT_RULES,
    ORIGINAL_ENCODERS_RULES,
    ORIGINAL_TRANSFORMER_RULES,
    ROBERTA_HEADS,
    ROBERTA_RULES,
    TIED,
    Rules,
    apply_key_map,
)
from .options import (
    CHECKPOINT_SUFFIXES,
    DTYPES,
    POSITION_OFFSET,
    SOURCES,
    TOKENIZER_FILES,
    WEIGHT_FILES,
    ConvertError,
    ConvertOptions,
    ConvertReport,
)
from .sources import load_hf_state_dict, load_torch_checkpoint
from .target import (
    build_target,
    check_destination,
    convert,
    extend_positions,
    looks_like_model_dir,
    verify_against,
)

__all__ = [
    "BERT_RULES",
    "CHECKPOINT_SUFFIXES",
    "ConvertError",
    "ConvertOptions",
    "ConvertReport",
    "DTYPES",
    "ORIGINAL_ENCODERS_RULES",
    "ORIGINAL_TRANSFORMER_RULES",
    "POSITION_OFFSET",
    "ROBERTA_HEADS",
    "ROBERTA_RULES",
    "Rules",
    "SOURCES",
    "TIED",
    "TOKENIZER_FILES",
    "WEIGHT_FILES",
    "apply_key_map",
    "build_target",
    "check_destination",
    "convert",
    "extend_positions",
    "load_hf_state_dict",
    "load_torch_checkpoint",
    "looks_like_model_dir",
    "verify_against",
]
