"""Scoring a Seq2Seq model by what it writes: generations for source texts (never past the decoder's positions),
then exact match, chrF and BLEU against the references."""

from __future__ import annotations

import torch


def decoder_position_limit(config) -> int | None:
    """How many positions the decoder has embeddings for (None for relative positions, e.g. T5)."""
    backbone = getattr(config, "backbone", config)
    decoder = backbone.get_text_config(decoder=True)
    for name in ("max_decoder_position_embeddings", "max_target_positions", "n_positions", "max_position_embeddings"):
        value = getattr(decoder, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@torch.no_grad()
def generate_batch(
    model, tokenizer, sources: list[str], num_beams: int = 1, max_new_tokens: int = 128, **kwargs
) -> list[str]:
    """
    Generated texts for `sources` (the same call `genxfer generate` and the Auto classes make), at most
    `max_new_tokens` long and never past the decoder's learned positions (a longer output would index past them).
    """
    encoded = tokenizer(sources, return_tensors="pt", padding=True).to(model.device)
    limit = decoder_position_limit(model.config)
    if limit is not None:
        # The start token takes one position, and ProphetNet's predicting stream looks one position ahead.
        max_new_tokens = max(1, min(max_new_tokens, limit - 2))
    output = model.generate(**encoded, num_beams=num_beams, max_new_tokens=max_new_tokens, **kwargs)
    return [text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)]


def generate_all(model, tokenizer, sources: list[str], batch_size: int, **kwargs) -> list[str]:
    was_training = model.training
    model.eval()
    texts = []
    for start in range(0, len(sources), batch_size):
        texts.extend(generate_batch(model, tokenizer, sources[start : start + batch_size], **kwargs))
    model.train(was_training)
    return texts


def score_texts(predictions: list[str], references: list[str]) -> dict:
    """Exact match (a fraction), chrF and BLEU (0-100, sacrebleu) of `predictions` against `references`."""
    from . import load_metric

    scores = {}
    scores.update(load_metric("exact_match").compute(predictions=predictions, references=references))
    scores.update(load_metric("chrf").compute(predictions=predictions, references=references))
    bleu = load_metric("bleu").compute(predictions=predictions, references=references)
    scores["bleu"] = bleu["bleu"]
    scores["num_examples"] = len(predictions)
    return scores


__all__ = ["decoder_position_limit", "generate_all", "generate_batch", "score_texts"]
