"""Vocabulary extension: a source tokenizer that lacks characters of the target text (another script: Cyrillic,
Greek, Chinese) gets them as new tokens, and the model new embedding and output rows for them, which then train."""

from __future__ import annotations

import torch
from tokenizers import AddedToken
from torch import nn

from ..data.tokenization import unknown_characters
from ..errors import ModelFolderError

ROWS_ONLY = "_genxfer_rows_only"  # marks a parameter that trains in some rows only (kept out of weight decay)


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
    _register_tokens_past_length(tokenizer)
    tokenizer.add_tokens(tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    rows = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(max(rows, max(ids) + 1))  # never shrink
    return [{"token": token, "id": index, "count": missing[token]} for token, index in zip(tokens, ids)]


def _register_tokens_past_length(tokenizer) -> None:
    """
    Some tokenizers number tokens past their own length without counting them: M2M100's language codes (`__ru__`
    at ids `len(tokenizer)` and up), so `add_tokens` would give new tokens the ids of those codes. Those tokens are
    registered first as added special tokens at the ids they already have, so that new ones come after them.
    """
    start = len(tokenizer)
    past = []
    while len(past) < 100_000:
        try:
            token = tokenizer.convert_ids_to_tokens(start + len(past))
        except (IndexError, ValueError, OverflowError):  # SentencePiece: "piece id is out of range"
            break
        if token is None or token == tokenizer.unk_token:
            break
        past.append(token)
    if not past:
        return
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in past], special_tokens=True)
    if tokenizer.convert_tokens_to_ids(past) != list(range(start, start + len(past))) or len(tokenizer) != start + len(
        past
    ):
        raise ModelFolderError(
            f"transfer.extend_vocabulary: this {type(tokenizer).__name__} numbers {len(past)} tokens past its length "
            "and they could not be registered at their ids, so added tokens would take them: extend the tokenizer "
            "yourself (add_tokens, then resize the model's embeddings) and use it as init_from."
        )


def train_added_rows(model: nn.Module, token_ids: list[int]) -> list[nn.Parameter]:
    """
    Lets the embedding rows of added tokens train when the strategy froze the embedding (LoRA freezes every base
    weight, `freeze_embeddings` the embeddings): the input embedding and, when untied, the output projection train
    in those rows only; a gradient hook zeroes the other rows' gradients, so Adam leaves them exactly as they were.
    One tied matrix is one parameter, so every use of it (encoder, decoder, LM head) sees the trained rows.
    Returns the parameters it made trainable.
    """
    weights = []
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        weight = getattr(module, "weight", None)
        if weight is not None and not weight.requires_grad and all(weight is not other for other in weights):
            weights.append(weight)
    for weight in weights:
        mask = torch.zeros(weight.shape[0], *([1] * (weight.dim() - 1)), dtype=weight.dtype, device=weight.device)
        mask[token_ids] = 1
        weight.requires_grad_(True)
        weight.register_hook(lambda gradient, mask=mask: gradient * mask)  # (V, D): only the added rows move
        setattr(weight, ROWS_ONLY, True)
    return weights


__all__ = ["ROWS_ONLY", "extend_vocabulary", "train_added_rows"]
