"""Small tokenizers trained on the corpus itself, so built-in text tasks need no download.

`char` keeps one token per character (ideal for num2words: tiny vocabulary, no unknown characters), `byte` is a
byte-level BPE that can encode any text. Both decode back to the exact input and load with `AutoTokenizer`.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN]
TOKENIZER_KINDS = ("char", "byte")


def sentinel_tokens(count: int) -> list[str]:
    """The T5-style sentinels `<extra_id_0>`, `<extra_id_1>`, ... used by span corruption."""
    return [f"<extra_id_{index}>" for index in range(count)]


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "char",
    vocab_size: int | None = None,
    num_sentinels: int = 0,
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer on `texts` with special tokens `<pad>` `<s>` `</s>` `<unk>` `<mask>` (ids 0-4).

    Encoding appends `</s>`; decoding with `skip_special_tokens=True` gives back the text exactly, spaces included.

    Args:
        texts: the corpus, e.g. every source and target string of every language you will train on.
        kind: `"char"` (one token per character of the corpus, plus the ten digits) or `"byte"` (byte-level BPE).
        vocab_size: for `"byte"`, the vocabulary size including the 256 bytes and special tokens (default: bytes
            only, no merges). Not used by `"char"`, whose vocabulary is the corpus alphabet.
        num_sentinels: how many `<extra_id_N>` sentinels to add after the special tokens (for span corruption).
        model_max_length: the longest input the model will accept, stored with the tokenizer.
    """
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(TOKENIZER_KINDS)}, got {kind!r}.")
    if num_sentinels < 0:
        raise ValueError(f"`num_sentinels` must be >= 0, got {num_sentinels}.")
    sentinels = sentinel_tokens(num_sentinels)
    reserved = SPECIAL_TOKENS + sentinels

    if kind == "char":
        alphabet = set(string.digits)
        for text in texts:
            alphabet.update(text)
        # Sorted so that the same corpus always gives the same ids.
        vocab = {token: index for index, token in enumerate(reserved + sorted(alphabet - set(reserved)))}
        tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
        # Every character (newlines too) is its own piece; Fuse joins them back without inserting spaces.
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()
    else:
        byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
        minimum = len(byte_alphabet) + len(reserved)
        if vocab_size is not None and vocab_size < minimum:
            raise ValueError(f"`vocab_size` must be at least {minimum} for kind 'byte', got {vocab_size}.")
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size or minimum,
            special_tokens=reserved,
            initial_alphabet=byte_alphabet,
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)

    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, eos_id)]
    )
    # Registering the reserved tokens as special keeps `<mask>` and sentinels whole when they appear in text.
    tokenizer.add_special_tokens(reserved)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        mask_token=MASK_TOKEN,
        extra_special_tokens=sentinels,
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
    )


__all__ = [
    "SPECIAL_TOKENS",
    "TOKENIZER_KINDS",
    "PAD_TOKEN",
    "BOS_TOKEN",
    "EOS_TOKEN",
    "UNK_TOKEN",
    "MASK_TOKEN",
    "sentinel_tokens",
    "train_tokenizer",
]


def unknown_characters(tokenizer, texts: Iterable[str]) -> tuple[dict[str, int], int]:
    """
    The characters of `texts` that `tokenizer` cannot represent (each encodes to its unknown token, or to nothing),
    with how often each occurs, and the number of non-space characters in all: a model can never write them.
    """
    counts: dict[str, int] = {}
    for text in texts:
        for character in text:
            if not character.isspace():
                counts[character] = counts.get(character, 0) + 1
    if not counts:
        return {}, 0
    characters = sorted(counts)
    encoded = tokenizer(characters, add_special_tokens=False)["input_ids"]
    unknown_id = tokenizer.unk_token_id
    missing = {
        character: counts[character]
        for character, ids in zip(characters, encoded)
        if not ids or (unknown_id is not None and unknown_id in ids)
    }
    return missing, sum(counts.values())


def check_tokenizer_coverage(tokenizer, texts: list[str], source: str, fix: str, threshold: float = 0.01) -> None:
    """
    Stops with one sentence when the characters `tokenizer` lacks make up at least `threshold` of `texts` (a model
    trained on them learns to write unknown tokens: chrF 0 for a language in another script); below that, warns.
    """
    from ..errors import DataError
    from ..utils import warn

    missing, total = unknown_characters(tokenizer, texts)
    if not missing:
        return
    share = sum(missing.values()) / total
    by_count = sorted(missing, key=lambda character: (-missing[character], character))
    shown = ", ".join(repr(character) for character in by_count[:20]) + (", ..." if len(by_count) > 20 else "")
    message = (
        f"the tokenizer of {source} lacks {len(missing)} character(s) of the training text ({share:.1%} of its "
        f"characters): {shown}"
    )
    if share >= threshold:
        raise DataError(f"{message[0].upper()}{message[1:]}; {fix}.")
    warn(f"{message}; they become unknown tokens, which the model cannot write.")
