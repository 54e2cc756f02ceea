"""BART text infilling and T5 span corruption on unpaired num2words text."""

import re

import numpy as np
import pytest
from datasets import Dataset

from hf_genxfer.data.denoising import span_corruption, span_corruption_noise, text_infilling, text_infilling_noise
from hf_genxfer.data.text import num2words_pairs, seq2seq_collator
from hf_genxfer.data.tokenization import train_tokenizer

NUM_SENTINELS = 16


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return list(num2words_pairs("fr", size=400, seed=0)["target"])


@pytest.fixture(scope="module")
def corpus(texts) -> Dataset:
    return Dataset.from_dict({"text": texts, "id": list(range(len(texts)))})


@pytest.fixture(scope="module")
def tokenizer(texts):
    return train_tokenizer(texts, num_sentinels=NUM_SENTINELS)


def sentinel_index(tokenizer) -> dict[int, int]:
    return {tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>"): i for i in range(NUM_SENTINELS)}


# text infilling


def test_infilling_columns_and_end_token(corpus, tokenizer):
    noised = text_infilling(corpus, tokenizer, seed=0)
    assert noised.column_names == ["input_ids", "attention_mask", "labels"]
    assert len(noised) == len(corpus)
    for example in noised.select(range(20)):
        assert example["input_ids"][-1] == example["labels"][-1] == tokenizer.eos_token_id
        assert len(example["attention_mask"]) == len(example["input_ids"])
        assert tokenizer.mask_token_id in example["input_ids"]


def test_infilling_masks_near_target_rate(corpus, tokenizer):
    noised = text_infilling(corpus, tokenizer, mask_ratio=0.3, seed=0)
    total = sum(len(labels) - 1 for labels in noised["labels"])
    kept = sum(sum(token != tokenizer.mask_token_id for token in ids[:-1]) for ids in noised["input_ids"])
    assert 1 - kept / total == pytest.approx(0.3, abs=0.02)
    # Poisson(3) spans, one mask each: about total * 0.3 / 3 masks (zero-length spans add a few).
    masks = sum(ids.count(tokenizer.mask_token_id) for ids in noised["input_ids"])
    assert 0.07 < masks / total < 0.14


def test_infilling_labels_are_the_original_and_masks_hide_spans(corpus, tokenizer):
    noised = text_infilling(corpus, tokenizer, seed=0)
    for example, text in zip(noised, corpus["text"]):
        assert tokenizer.decode(example["labels"], skip_special_tokens=True) == text
        pieces = tokenizer.decode(example["input_ids"][:-1]).split(tokenizer.mask_token)
        assert re.fullmatch(".*".join(re.escape(piece) for piece in pieces), text, flags=re.S)


def test_infilling_is_seeded(corpus, tokenizer):
    first = text_infilling(corpus, tokenizer, seed=5)["input_ids"]
    assert first == text_infilling(corpus, tokenizer, seed=5)["input_ids"]
    assert first != text_infilling(corpus, tokenizer, seed=6)["input_ids"]
    # The noise of an example depends on its index, not on how the dataset is batched.
    assert text_infilling(corpus.select(range(10)), tokenizer, seed=5)["input_ids"] == first[:10]


def test_infilling_noise_removes_exact_budget_without_adjacent_masks():
    rng = np.random.default_rng(0)
    for length in (1, 2, 5, 40, 200):
        ids = list(range(10, 10 + length))
        noised = text_infilling_noise(ids, 4, rng, mask_ratio=0.3)
        assert len([token for token in noised if token != 4]) == length - max(1, round(0.3 * length))
        assert all(not (a == b == 4) for a, b in zip(noised, noised[1:]))
        assert [token for token in noised if token != 4] == [token for token in ids if token in noised]


def test_infilling_rejects_bad_arguments(corpus, tokenizer):
    with pytest.raises(ValueError, match=r"`mask_ratio` must be in \(0, 1\)"):
        text_infilling(corpus, tokenizer, mask_ratio=1.5)
    with pytest.raises(ValueError, match="no column 'sentence'"):
        text_infilling(corpus, tokenizer, text_column="sentence")


# span corruption


def reconstruct(inputs: list[int], targets: list[int], sentinels: dict[int, int]) -> list[int]:
    spans, current = {}, None
    for token in targets:
        if token in sentinels:
            current = sentinels[token]
            spans[current] = []
        else:
            spans[current].append(token)
    return [piece for token in inputs for piece in (spans[sentinels[token]] if token in sentinels else [token])]


def test_span_corruption_reconstructs_original(corpus, tokenizer):
    corrupted = span_corruption(corpus, tokenizer, seed=0)
    sentinels = sentinel_index(tokenizer)
    assert corrupted.column_names == ["input_ids", "attention_mask", "labels"]
    for example, text in zip(corrupted, corpus["text"]):
        inputs, targets = example["input_ids"][:-1], example["labels"][:-1]
        # Inputs use <extra_id_0>..<extra_id_k-1> in order; targets open with the first and close with <extra_id_k>.
        input_order = [sentinels[t] for t in inputs if t in sentinels]
        assert input_order == list(range(len(input_order))) and input_order
        assert [sentinels[t] for t in targets if t in sentinels] == list(range(len(input_order) + 1))
        assert targets[0] in sentinels
        assert tokenizer.decode(reconstruct(inputs, targets, sentinels)) == text


def test_span_corruption_noise_density_and_seed(corpus, tokenizer):
    corrupted = span_corruption(corpus, tokenizer, noise_density=0.15, seed=0)
    sentinels = sentinel_index(tokenizer)
    noise = sum(sum(t not in sentinels for t in labels[:-1]) for labels in corrupted["labels"])
    kept = sum(sum(t not in sentinels for t in ids[:-1]) for ids in corrupted["input_ids"])
    assert noise / (noise + kept) == pytest.approx(0.15, abs=0.02)
    assert corrupted["input_ids"] == span_corruption(corpus, tokenizer, seed=0)["input_ids"]
    assert corrupted["input_ids"] != span_corruption(corpus, tokenizer, seed=1)["input_ids"]


def test_span_corruption_noise_example():
    inputs, targets = span_corruption_noise(list(range(10, 30)), [100, 101, 102, 103], np.random.default_rng(0))
    # 20 tokens at density 0.15: 3 noise tokens in round(3 / 3) = 1 span.
    assert inputs[0] == 10  # T5 always starts with kept tokens
    assert [t for t in inputs if t >= 100] == [100]
    assert targets[0] == 100 and targets[-1] == 101 and len(targets) == 3 + 2
    assert sorted(t for t in inputs + targets if t < 100) == list(range(10, 30))


def test_span_corruption_needs_sentinels(corpus, texts):
    with pytest.raises(ValueError, match=r"sentinel tokens <extra_id_0>.*num_sentinels=N"):
        span_corruption(corpus, train_tokenizer(texts))
    few = train_tokenizer(texts, num_sentinels=2)
    with pytest.raises(ValueError, match="needs 3 sentinel ids here, got 2"):
        span_corruption(corpus, few)
    # Capping the length keeps the number of spans within the sentinels at hand.
    assert len(span_corruption(corpus, few, max_length=10)) == len(corpus)


# both feed the same collator


@pytest.mark.parametrize("noise", [text_infilling, span_corruption])
def test_denoising_batches_collate(corpus, tokenizer, noise):
    examples = noise(corpus, tokenizer, seed=0)
    batch = seq2seq_collator(tokenizer)([examples[index] for index in range(8)])
    assert batch["input_ids"].shape[0] == batch["labels"].shape[0] == 8
    for row in range(8):
        length, label_length = len(examples[row]["input_ids"]), len(examples[row]["labels"])
        assert batch["attention_mask"][row].sum() == length
        assert batch["input_ids"][row, length:].eq(tokenizer.pad_token_id).all()
        assert batch["labels"][row, :label_length].tolist() == examples[row]["labels"]
        assert batch["labels"][row, label_length:].eq(-100).all()
