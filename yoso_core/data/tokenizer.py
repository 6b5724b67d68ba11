"""Tokenizers: train a byte-level BPE from scratch, or load one with AutoTokenizer.

The trained tokenizer matches YosoConfig's special ids (bos ``<s>`` = 0, pad ``<pad>`` = 1,
eos ``</s>`` = 2) and adds ``<unk>`` = 3 and ``<mask>`` = 4. Like RoBERTa's it puts a space before
every word, so a word tokenizes the same at the start of a text, in running text and when words
are given one by one (``is_split_into_words=True``, which token-classification needs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .schema import check_task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def build_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 8000, max_length: int, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` with the special ids YosoConfig expects.

    Special tokens ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4; RoBERTa-style
    pairs (``<s> A </s></s> B </s>``); ``model_max_length = max_length``; a prefix space before
    every word so that words given one by one (``is_split_into_words``) tokenize like running text.
    Save it with ``save_pretrained``.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if max_length < 8:
        raise ValueError(f"max_length must be at least 8 tokens, got {max_length}")
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    core.decoder = decoders.ByteLevel()
    # Like RoBERTa's, "<mask>" takes the space before it: "a <mask> b" -> "Ġa", "<mask>", "Ġb".
    specials = [
        AddedToken(t, lstrip=t == "<mask>", rstrip=False, special=True, normalized=False)
        for t in SPECIAL_TOKENS
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    # <s> A </s> and <s> A </s></s> B </s>; offsets leave out the prefix space.
    core.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=True
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        model_max_length=max_length,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=specials[4],
        add_prefix_space=True,
    )
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if ids != list(range(len(SPECIAL_TOKENS))):
        raise RuntimeError(f"special token ids came out {ids}, expected 0..4")  # a tokenizers change
    return tokenizer


def load_tokenizer(name_or_dir: str, *, max_length: int) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained(name_or_dir)`` with ``model_max_length = max_length``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(name_or_dir))
    tokenizer.model_max_length = max_length
    return tokenizer


def training_texts(task: str, records: Iterable[dict]) -> Iterator[str]:
    """Every text field of ``records`` (questions, contexts, choices, tokens), to train a tokenizer on."""
    check_task(task)
    for record in records:
        for key in ("text", "text_pair", "question", "context"):
            if isinstance(record.get(key), str):
                yield record[key]
        if "tokens" in record:
            yield " ".join(record["tokens"])
        yield from record.get("choices", ())
