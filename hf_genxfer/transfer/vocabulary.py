"""Vocabulary extension: a source tokenizer that lacks characters of the target text (another script: Cyrillic,
Greek, Chinese) gets them as new tokens, and the model new embedding and output rows for them, which then train."""

from __future__ import annotations

from torch import nn

from ..data.tokenization import unknown_characters


def extend_vocabulary(model: nn.Module, tokenizer, texts: list[str]) -> list[dict]:
    """
    Adds each character of `texts` that `tokenizer` cannot represent as a token of its own (`add_tokens`: matched
    before the tokenizer's own model, so the character is one token wherever it occurs), and resizes the model's
    token embedding and LM head to match. transformers initialises the new rows from the mean and covariance of the
    existing ones (`mean_resizing`), so they start as plausible but distinct tokens. Returns one
    `{"token", "id", "count"}` per added token, most frequent first, for the transfer report.
    """
    missing, _ = unknown_characters(tokenizer, texts)
    tokens = sorted(missing, key=lambda character: (-missing[character], character))
    if not tokens:
        return []
    tokenizer.add_tokens(tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    rows = model.get_input_embeddings().weight.shape[0]
    # Never shrink: some tokenizers number special tokens past their length (M2M100's language codes).
    model.resize_token_embeddings(max(rows, max(ids) + 1))
    return [{"token": token, "id": index, "count": missing[token]} for token, index in zip(tokens, ids)]


__all__ = ["extend_vocabulary"]
