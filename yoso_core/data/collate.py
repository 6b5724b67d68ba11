"""Batches: right padding to the longest feature, and MLM masking.

MLM masking follows BERT: each non-special token is chosen with probability ``mlm_probability``;
a chosen token becomes ``<mask>`` 80% of the time, a random token 10% and stays itself 10%; the
labels hold the original id at chosen positions and -100 elsewhere. A batch in which no token was
chosen gets one chosen position, so its loss is always defined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .encoding import IGNORE
from .schema import check_task

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

MODEL_KEYS = ("input_ids", "attention_mask", "labels", "start_positions", "end_positions")


def _pad(rows: list[list[int]], value: int, length: int) -> list[list[int]]:
    return [row + [value] * (length - len(row)) for row in rows]


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    probability: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style masking of ``input_ids`` (batch, seq): (masked ids, labels), drawn from ``generator``."""
    import torch

    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    maskable = attention_mask.bool() & ~torch.isin(input_ids, special)
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & maskable
    if not chosen.any() and maskable.any():
        candidates = maskable.flatten().nonzero().flatten()
        pick = candidates[torch.randint(len(candidates), (1,), generator=generator)]
        chosen.view(-1)[pick] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    draw = torch.rand(input_ids.shape, generator=generator)
    to_mask = chosen & (draw < 0.8)
    to_random = chosen & (draw >= 0.8) & (draw < 0.9)
    random_ids = torch.randint(len(tokenizer), input_ids.shape, generator=generator)
    out = torch.where(to_mask, torch.full_like(input_ids, tokenizer.mask_token_id), input_ids)
    out = torch.where(to_random, random_ids, out)
    return out, labels


def collate(
    task: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    mask: bool = True,
    pad_choices: bool = False,
) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """A collate function for ``task``: features -> dict of model keyword tensors.

    Pads right to the longest feature (pad id, attention_mask 0, token labels -100) and keeps only
    the model's keyword arguments (``input_ids``, ``attention_mask``, ``labels``,
    ``start_positions``, ``end_positions``), dropping the bookkeeping keys. For mlm it masks
    ``mlm_probability`` of the non-special tokens (80% ``<mask>``, 10% a random token, 10%
    unchanged) with randomness from ``generator``; labels are -100 elsewhere. Prediction input
    (``mask=False``, or a batch that already holds ``<mask>`` tokens) is not masked and has no labels.
    A multiple-choice batch needs one number of choices; with ``pad_choices`` (prediction, where
    no label points at a choice) features with fewer get choices of padding (attention_mask 0).
    """
    import torch

    check_task(task)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token")
    if task == "mlm" and mask and tokenizer.mask_token_id is None:
        raise ValueError("masked-LM training needs a tokenizer with a mask token")

    def collate_fn(features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        batch: dict[str, torch.Tensor] = {}
        if task == "multiple-choice":
            counts = {len(f["input_ids"]) for f in features}
            if len(counts) != 1 and not pad_choices:
                raise ValueError(
                    f"a multiple-choice batch needs the same number of choices, got {sorted(counts)}"
                )
            length = max(len(row) for f in features for row in f["input_ids"])
            choices = max(counts)

            def padded(rows: list[list[int]], value: int) -> list[list[int]]:
                # (choices, seq): fewer choices get rows of padding (prediction only, see pad_choices)
                return _pad(rows, value, length) + [[value] * length] * (choices - len(rows))

            # (batch, choices, seq)
            batch["input_ids"] = torch.tensor([padded(f["input_ids"], pad_id) for f in features])
            masks = [f.get("attention_mask") or [[1] * len(r) for r in f["input_ids"]] for f in features]
            batch["attention_mask"] = torch.tensor([padded(m, 0) for m in masks])
        else:
            length = max(len(f["input_ids"]) for f in features)
            # (batch, seq)
            batch["input_ids"] = torch.tensor(_pad([f["input_ids"] for f in features], pad_id, length))
            batch["attention_mask"] = torch.tensor(
                _pad([f.get("attention_mask") or [1] * len(f["input_ids"]) for f in features], 0, length)
            )
        for key in ("labels", "start_positions", "end_positions"):
            present = sum(key in f for f in features)
            if present == 0:
                continue
            if present != len(features):
                raise ValueError(
                    f"{present} of {len(features)} features have {key!r}; a batch needs all or none"
                )
            values = [f[key] for f in features]
            if task == "token-classification" and key == "labels":
                values = _pad(values, IGNORE, length)
            batch[key] = torch.tensor(values)
        if task == "mlm" and mask:
            already = (batch["input_ids"] == tokenizer.mask_token_id).any()
            if not already:
                batch["input_ids"], batch["labels"] = mask_tokens(
                    batch["input_ids"], batch["attention_mask"], tokenizer, mlm_probability, generator
                )
        return batch

    return collate_fn
