"""Built-in corpora (digits, num2words), loaders for imagefolder/json/csv/Hub data, tokenizers and collators."""

from .denoising import span_corruption, text_infilling
from .glyphs import GLYPH_CHARACTERS, available_glyph_fonts, glyphs_dataset
from .images import digits_dataset, few_shot, filter_classes, load_image_dataset, split_held_out, with_image_transform
from .text import (
    load_text_pairs,
    num2words_languages,
    num2words_pairs,
    num2words_splits,
    seq2seq_collator,
    tokenize_pairs,
)
from .tokenization import SPECIAL_TOKENS, train_tokenizer

__all__ = [
    "GLYPH_CHARACTERS",
    "available_glyph_fonts",
    "glyphs_dataset",
    "SPECIAL_TOKENS",
    "digits_dataset",
    "few_shot",
    "filter_classes",
    "load_image_dataset",
    "load_text_pairs",
    "num2words_languages",
    "num2words_pairs",
    "num2words_splits",
    "seq2seq_collator",
    "span_corruption",
    "split_held_out",
    "text_infilling",
    "tokenize_pairs",
    "train_tokenizer",
    "with_image_transform",
]
