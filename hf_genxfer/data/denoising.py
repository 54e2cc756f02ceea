"""Self-supervised Seq2Seq examples from unpaired text: BART text infilling and T5 span corruption.

Both turn a text column into `input_ids`/`attention_mask`/`labels`, the same columns as `tokenize_pairs`, so the
same collator and training step serve pretraining on raw text and supervised pairs. Noise is drawn from a generator
seeded by (seed, example index): the same seed gives the same examples whatever the batching.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase


def _random_segmentation(rng: np.random.Generator, num_items: int, num_segments: int) -> list[int]:
    """Split `num_items` into `num_segments` positive lengths, uniformly over all such splits."""
    cuts = np.sort(rng.choice(np.arange(1, num_items), size=num_segments - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [num_items]])).tolist()


def text_infilling_noise(
    token_ids: list[int],
    mask_token_id: int,
    rng: np.random.Generator,
    mask_ratio: float = 0.3,
    poisson_lambda: float = 3.0,
) -> list[int]:
    """BART text infilling: spans with Poisson(`poisson_lambda`) lengths, each replaced by one mask token.

    `round(mask_ratio * len(token_ids))` tokens are removed (at least one); a span of length 0 inserts a mask.
    Spans never touch, so every mask stands for exactly one span.
    """
    length = len(token_ids)
    if length == 0:
        return []
    budget = min(length, max(1, round(mask_ratio * length)))
    span_lengths = []
    while sum(span_lengths) < budget:
        span_lengths.append(int(rng.poisson(poisson_lambda)))
    span_lengths[-1] -= sum(span_lengths) - budget
    num_kept = length - budget
    # Spans need a kept token between them: keep only as many spans as the kept tokens can separate.
    while len(span_lengths) > num_kept + 1:
        shortest = int(np.argmin(span_lengths[:-1])) if len(span_lengths) > 1 else 0
        span_lengths[-1] += span_lengths.pop(shortest)
    num_spans = len(span_lengths)
    # Gaps of kept tokens before, between and after the spans; inner gaps hold at least one token.
    free = num_kept - (num_spans - 1)
    bars = np.sort(rng.choice(free + num_spans, size=num_spans, replace=False))
    gaps = np.diff(np.concatenate([[-1], bars, [free + num_spans]])) - 1
    gaps[1:-1] += 1

    noised, position = [], 0
    for gap, span_length in zip(gaps[:-1], span_lengths):
        noised.extend(token_ids[position : position + gap])
        noised.append(mask_token_id)
        position += gap + span_length
    noised.extend(token_ids[position:])
    return noised


def span_corruption_noise(
    token_ids: list[int],
    sentinel_ids: list[int],
    rng: np.random.Generator,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> tuple[list[int], list[int]]:
    """T5 span corruption: returns (inputs, targets) for one sequence, as in T5's `random_spans_noise_mask`.

    Noise spans become sentinels in the inputs ("Thank you <extra_id_0> me to your party <extra_id_1> week") and the
    targets spell them out ("<extra_id_0> for inviting <extra_id_1> last <extra_id_2>"). Needs
    `number of spans + 1` sentinel ids.
    """
    length = len(token_ids)
    if length < 2:
        raise ValueError(f"Span corruption needs sequences of at least 2 tokens, got {length}.")
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(1, min(round(num_noise / mean_noise_span_length), num_noise, length - num_noise))
    if num_spans + 1 > len(sentinel_ids):
        raise ValueError(f"Span corruption needs {num_spans + 1} sentinel ids here, got {len(sentinel_ids)}.")
    noise_lengths = _random_segmentation(rng, num_noise, num_spans)
    kept_lengths = _random_segmentation(rng, length - num_noise, num_spans)

    inputs, targets, position = [], [], 0
    for index, (kept, noise) in enumerate(zip(kept_lengths, noise_lengths)):
        inputs.extend(token_ids[position : position + kept])
        position += kept
        inputs.append(sentinel_ids[index])
        targets.append(sentinel_ids[index])
        targets.extend(token_ids[position : position + noise])
        position += noise
    targets.append(sentinel_ids[num_spans])
    return inputs, targets


def _map_noise(
    dataset: Dataset | DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str,
    max_length: int | None,
    seed: int,
    noise: Callable[[list[int], np.random.Generator], tuple[list[int], list[int]]],
    min_tokens: int,
) -> Dataset | DatasetDict:
    """Tokenize `text_column`, apply `noise(ids, rng) -> (inputs, targets)` and append the end token to both."""
    if isinstance(dataset, DatasetDict):
        return DatasetDict(
            {
                name: _map_noise(part, tokenizer, text_column, max_length, seed, noise, min_tokens)
                for name, part in dataset.items()
            }
        )
    if text_column not in dataset.column_names:
        raise ValueError(f"The dataset has no column {text_column!r} (it has {', '.join(dataset.column_names)}).")
    end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []

    def noise_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        # Special tokens are added by hand so that noise never lands on them.
        encoded = tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]
        examples = {"input_ids": [], "attention_mask": [], "labels": []}
        for ids, index in zip(encoded, indices):
            if max_length is not None:
                ids = ids[: max_length - len(end)]
            if len(ids) < min_tokens:
                continue
            inputs, targets = noise(ids, np.random.default_rng([seed, index]))
            examples["input_ids"].append(inputs + end)
            examples["attention_mask"].append([1] * (len(inputs) + len(end)))
            examples["labels"].append(targets + end)
        return examples

    return dataset.map(noise_batch, batched=True, with_indices=True, remove_columns=dataset.column_names)


def text_infilling(
    dataset: Dataset | DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str = "text",
    mask_ratio: float = 0.3,
    poisson_lambda: float = 3.0,
    max_length: int | None = None,
    seed: int = 0,
) -> Dataset | DatasetDict:
    """BART-style denoising examples: `input_ids` = text with spans masked, `labels` = the whole text.

    Each span (Poisson(3) lengths by default) becomes one `tokenizer.mask_token`; ~`mask_ratio` of the tokens are
    removed. Both sides end with the end token (`</s>`); other columns and empty texts are dropped.
    """
    if tokenizer.mask_token_id is None:
        raise ValueError("Text infilling needs a tokenizer with a mask token, e.g. one from `train_tokenizer`.")
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"`mask_ratio` must be in (0, 1), got {mask_ratio}.")
    if poisson_lambda <= 0:
        raise ValueError(f"`poisson_lambda` must be > 0, got {poisson_lambda}.")

    def noise(ids: list[int], rng: np.random.Generator) -> tuple[list[int], list[int]]:
        return text_infilling_noise(ids, tokenizer.mask_token_id, rng, mask_ratio, poisson_lambda), ids

    return _map_noise(dataset, tokenizer, text_column, max_length, seed, noise, min_tokens=1)


def span_corruption(
    dataset: Dataset | DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str = "text",
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    max_length: int | None = None,
    seed: int = 0,
) -> Dataset | DatasetDict:
    """T5-style denoising examples: `input_ids` = text with spans replaced by sentinels, `labels` = the spans.

    The tokenizer must know the sentinels `<extra_id_0>`, `<extra_id_1>`, ...: T5 tokenizers do, and
    `train_tokenizer(..., num_sentinels=N)` adds them. Texts shorter than 2 tokens are dropped.
    """
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"`noise_density` must be in (0, 1), got {noise_density}.")
    if mean_noise_span_length < 1:
        raise ValueError(f"`mean_noise_span_length` must be >= 1, got {mean_noise_span_length}.")
    vocab = tokenizer.get_vocab()
    sentinel_ids = []
    while (token := f"<extra_id_{len(sentinel_ids)}>") in vocab:
        sentinel_ids.append(vocab[token])
    if len(sentinel_ids) < 2:
        raise ValueError(
            "Span corruption needs sentinel tokens <extra_id_0>, <extra_id_1>, ... in the tokenizer: use a T5 "
            "tokenizer or train_tokenizer(..., num_sentinels=N)."
        )

    def noise(ids: list[int], rng: np.random.Generator) -> tuple[list[int], list[int]]:
        try:
            return span_corruption_noise(ids, sentinel_ids, rng, noise_density, mean_noise_span_length)
        except ValueError as error:
            raise ValueError(
                f"{error} Add sentinels with train_tokenizer(..., num_sentinels=N) or cap the text with `max_length`."
            ) from error

    return _map_noise(dataset, tokenizer, text_column, max_length, seed, noise, min_tokens=2)


__all__ = ["span_corruption", "span_corruption_noise", "text_infilling", "text_infilling_noise"]
