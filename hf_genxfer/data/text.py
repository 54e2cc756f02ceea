"""Text-pair corpora as `datasets` objects: built-in num2words pairs, json/csv files and Hub datasets, and the
tokenize and collate steps that turn them into padded Seq2Seq batches.

Every pair corpus has a `source` column (model input) and a `target` column (text to generate).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from datasets import Dataset, DatasetDict, Features, Value, load_dataset
from num2words import CONVERTER_CLASSES, num2words
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

from ..errors import DataError
from .denoising import span_corruption, text_infilling

_FILE_LOADERS = {".json": "json", ".jsonl": "json", ".csv": "csv"}


def num2words_languages() -> list[str]:
    """Every language code num2words supports (e.g. `en`, `fr`, `de`, `es_CO`)."""
    return sorted(CONVERTER_CLASSES)


def _check_language(language: str) -> None:
    if language not in CONVERTER_CLASSES:
        codes = num2words_languages()
        raise DataError(
            f"Unknown num2words language {language!r}: use one of its {len(codes)} codes, "
            f"e.g. {', '.join(code for code in ('en', 'fr', 'de', 'es', 'it', 'pt', 'nl') if code in codes)} "
            "(hf_genxfer.data.text.num2words_languages() lists them all)."
        )


def _sample_numbers(size: int, low: int, high: int, seed: int) -> np.ndarray:
    """`size` distinct integers from [low, high), in random order."""
    if low >= high:
        raise DataError(f"The number range must satisfy low < high, got low={low} and high={high}.")
    if size < 0 or size > high - low:
        raise DataError(
            f"Cannot draw {size} distinct numbers from [{low}, {high}): the size must be between 0 and {high - low}."
        )
    rng = np.random.default_rng(seed)
    # Sampling offsets keeps memory at `size` even for huge ranges.
    return low + rng.choice(high - low, size=size, replace=False)


def _ordered_numbers(size: int, low: int, high: int, seed: int) -> np.ndarray:
    """The first `size` numbers of one seeded permutation of [low, high): a longer draw extends a shorter one."""
    _sample_numbers(size, low, high, seed)  # validates the range and the size
    if high - low > 20_000_000:  # a full permutation would be too large: plain sampling (prefixes then differ)
        return _sample_numbers(size, low, high, seed)
    return low + np.random.default_rng(seed).permutation(high - low)[:size]


def _spell(number: int, language: str) -> str:
    try:
        return num2words(number, lang=language)
    except Exception as error:  # a few converters fail on some numbers (e.g. "am" in num2words 0.5.14)
        raise DataError(
            f"num2words cannot spell {number} in {language!r} ({type(error).__name__}: {error}): "
            "try another number range or language."
        ) from error


def _pairs_from_numbers(numbers: Sequence[int], language: str) -> Dataset:
    numbers = [int(number) for number in numbers]
    return Dataset.from_dict(
        {
            "source": [str(number) for number in numbers],
            "target": [_spell(number, language) for number in numbers],
            "language": [language] * len(numbers),
        }
    )


def num2words_pairs(
    language: str = "en", size: int = 1000, low: int = 0, high: int = 10_000, seed: int = 0
) -> Dataset:
    """`size` pairs for distinct numbers drawn from [low, high): `source` "4021", `target` "four thousand and
    twenty-one", `language` "en"."""
    _check_language(language)
    return _pairs_from_numbers(_sample_numbers(size, low, high, seed), language)


def num2words_splits(
    language: str = "en",
    train_size: int = 1000,
    validation_size: int = 100,
    test_size: int = 100,
    low: int = 0,
    high: int = 10_000,
    seed: int = 0,
) -> DatasetDict:
    """`train`/`validation`/`test` num2words pairs that never share a number.

    The numbers of [low, high) are put in one seeded random order and cut into test, validation and train, in that
    order: a model is always evaluated on numbers it never saw, and the test (and validation) numbers do not change
    with `train_size`, so runs on 25 or 1,000 training pairs are scored on the same numbers. The same arguments
    always give the same splits.
    """
    _check_language(language)
    sizes = {"test": test_size, "validation": validation_size, "train": train_size}
    for name, size in sizes.items():
        if size < 0:
            raise DataError(f"`{name}_size` must be >= 0, got {size}.")
    numbers = _ordered_numbers(sum(sizes.values()), low, high, seed)
    splits, start = {}, 0
    for name, size in sizes.items():
        splits[name] = _pairs_from_numbers(numbers[start : start + size], language)
        start += size
    return DatasetDict(splits)


def _load_corpus(path_or_hub_id: str, split: str | None) -> Dataset | DatasetDict:
    """A json/jsonl/csv file by its loader, else a local dataset folder or Hub id (`load_dataset` picks the builder)."""
    extension = os.path.splitext(path_or_hub_id)[1].lower()
    if os.path.isfile(path_or_hub_id):
        if extension not in _FILE_LOADERS:
            raise DataError(
                f"{path_or_hub_id!r} must be a {', '.join(_FILE_LOADERS)} file, a dataset folder or a Hub dataset id."
            )
        if os.path.getsize(path_or_hub_id) == 0:
            raise DataError(
                f"{path_or_hub_id!r} is empty: give it one pair per row (json lines or csv with a header), e.g. "
                '{"source": "4021", "target": "four thousand and twenty-one"}.'
            )
        return _read(path_or_hub_id, _FILE_LOADERS[extension], data_files=path_or_hub_id, split=split)
    if extension in _FILE_LOADERS:
        raise DataError(f"No such text file: {path_or_hub_id!r}.")
    return _read(path_or_hub_id, path_or_hub_id, split=split)


def _read(name: str, builder: str, **kwargs) -> Dataset | DatasetDict:
    """`load_dataset` with its failures (a malformed file, a missing dataset, an unknown split) as one sentence."""
    from datasets.exceptions import DatasetsError

    try:
        return load_dataset(builder, **kwargs)
    except (DatasetsError, StopIteration, ValueError, TypeError, KeyError, OSError, UnicodeDecodeError) as error:
        if isinstance(error, DataError):
            raise
        while error.__cause__ is not None:  # datasets wraps the parser's own error: name that one
            error = error.__cause__
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        if os.path.isfile(name):
            raise DataError(
                f"{name!r} cannot be read as {builder} ({type(error).__name__}: {reason}): check that every row "
                "is a complete record with the same columns."
            ) from None
        raise DataError(
            f"The dataset {name!r} cannot be loaded ({type(error).__name__}: {reason}): pass a json/jsonl/csv file, "
            "a dataset folder, or a Hub dataset id that exists."
        ) from None


def load_text_pairs(
    path_or_hub_id: str,
    source_column: str = "source",
    target_column: str = "target",
    split: str | None = "train",
) -> Dataset | DatasetDict:
    """Load a text-pair corpus from a json/jsonl/csv file or a Hub dataset id, keeping only `source` and `target`.

    `split=None` returns every split of the corpus as a `DatasetDict` (a single file has only `train`).
    """
    dataset = _load_corpus(path_or_hub_id, split)

    def select_pair(part: Dataset) -> Dataset:
        for role, column in (("source", source_column), ("target", target_column)):
            if column not in part.column_names:
                raise DataError(
                    f"The corpus {path_or_hub_id!r} has no column {column!r} for the {role} text "
                    f"(it has {', '.join(part.column_names)})."
                )
        part = part.select_columns([source_column, target_column])
        part = part.rename_columns({source_column: "__source", target_column: "__target"}).rename_columns(
            {"__source": "source", "__target": "target"}
        )
        # csv readers turn digit-only columns into integers; the model reads text.
        text_features = Features({"source": Value("string"), "target": Value("string")})
        if part.features != text_features:
            try:
                part = part.cast(text_features)
            except (TypeError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(
                    f"The {source_column!r} and {target_column!r} columns of {path_or_hub_id!r} must hold text "
                    f"({' '.join(str(error).split())[:200]}): give every row two strings."
                ) from None
        for role, column in (("source", source_column), ("target", target_column)):
            if None in part[role]:
                row = part[role].index(None)
                raise DataError(
                    f"Row {row} of {path_or_hub_id!r} has no {role} text (column {column!r} is empty or null): "
                    "fill it in or drop the row."
                )
        return part

    if isinstance(dataset, DatasetDict):
        return DatasetDict({name: select_pair(part) for name, part in dataset.items()})
    return select_pair(dataset)


def load_text_corpus(
    path_or_hub_id: str, text_column: str = "text", split: str | None = "train"
) -> Dataset | DatasetDict:
    """Unpaired text (a json/jsonl/csv file, dataset folder or Hub id) for denoising pretraining.

    The text column becomes both `source` and `target`, so the result goes where pairs go; a denoising objective
    then noises `target` into the model's input.
    """
    dataset = _load_corpus(path_or_hub_id, split)

    def as_pairs(part: Dataset) -> Dataset:
        if text_column not in part.column_names:
            raise DataError(
                f"The corpus {path_or_hub_id!r} has no text column {text_column!r} "
                f"(it has {', '.join(part.column_names)}): set data.target_column to it."
            )
        part = part.select_columns([text_column]).rename_column(text_column, "target")
        try:
            part = part.cast(Features({"target": Value("string")}))
        except (TypeError, ValueError) as error:
            raise DataError(
                f"The text column {text_column!r} of {path_or_hub_id!r} must hold text "
                f"({' '.join(str(error).split())[:200]}): give every row a string."
            ) from None
        if None in part["target"]:
            raise DataError(
                f"Row {part['target'].index(None)} of {path_or_hub_id!r} has no text in {text_column!r}: fill it in "
                "or drop the row."
            )
        return part.add_column("source", list(part["target"]))

    if isinstance(dataset, DatasetDict):
        return DatasetDict({name: as_pairs(part) for name, part in dataset.items()})
    return as_pairs(dataset)


def tokenize_pairs(
    dataset: Dataset | DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int = 128,
    max_target_length: int = 128,
) -> Dataset | DatasetDict:
    """Tokenize `source` into `input_ids`/`attention_mask` and `target` into `labels`; other columns are dropped.

    The result feeds [`seq2seq_collator`]. Each side ends with the tokenizer's end token (`</s>` for ours).
    """

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        model_inputs = tokenizer(batch["source"], max_length=max_source_length, truncation=True)
        # `text_target`: tokenizers with a target side (mBART's and M2M100's target language code, Marian's
        # target vocabulary) encode labels in target mode; for the others it is the same call.
        labels = tokenizer(text_target=batch["target"], max_length=max_target_length, truncation=True)
        return {
            "input_ids": model_inputs["input_ids"],
            "attention_mask": model_inputs["attention_mask"],
            "labels": labels["input_ids"],
        }

    if isinstance(dataset, DatasetDict):
        return DatasetDict(
            {
                name: tokenize_pairs(part, tokenizer, max_source_length, max_target_length)
                for name, part in dataset.items()
            }
        )
    return dataset.map(tokenize, batched=True, remove_columns=dataset.column_names)


def seq2seq_collator(tokenizer: PreTrainedTokenizerBase, model=None, pad_to_multiple_of: int | None = None):
    """Pads `input_ids` with the pad id (mask 0) and `labels` with -100 (ignored by the loss).

    With `model`, also adds `decoder_input_ids` (labels shifted right behind the decoder start token).
    """
    return DataCollatorForSeq2Seq(
        tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt"
    )


# --------------------------------------------------------------------------------------------------------------------
# A recipe's pairs, ready for training and scoring


def load_text_splits(data) -> DatasetDict:
    """`train`/`validation`/`test` pairs with `source` and `target` columns, never sharing an example."""
    if data.dataset == "num2words":
        return num2words_splits(
            data.language, data.train_size, data.validation_size, data.test_size, data.low, data.high, data.seed
        )
    if data.objective == "pairs":
        corpus = load_text_pairs(data.dataset, data.source_column, data.target_column, split=None)
    else:  # denoising reads unpaired text: the target column alone
        corpus = load_text_corpus(data.dataset, data.target_column, split=None)
    if "train" not in corpus:
        raise DataError(f"The corpus {data.dataset!r} has no train split (it has {', '.join(corpus)}).")
    splits = {"train": corpus["train"]}
    for name, size in (("test", data.test_size), ("validation", data.validation_size)):
        if name in corpus:
            splits[name] = corpus[name]
        else:  # carve the missing split out of train, seeded
            if size >= len(splits["train"]):
                raise DataError(
                    f"The corpus {data.dataset!r} has {len(splits['train'])} training pairs, too few to hold out "
                    f"data.{name}_size={size}: lower it or add a {name} split."
                )
            parts = splits["train"].train_test_split(test_size=size, seed=data.seed)
            splits["train"], splits[name] = parts["train"], parts["test"]
    if data.train_size < len(splits["train"]):
        splits["train"] = splits["train"].shuffle(seed=data.seed).select(range(data.train_size))
    return DatasetDict(splits)


def tokenizer_corpus(data, splits: DatasetDict) -> list[str]:
    """Texts whose characters the tokenizer must cover: every split, plus num2words in `tokenizer_languages`."""
    texts = [t for part in splits.values() for column in ("source", "target") for t in part[column]]
    for language in data.tokenizer_languages or []:
        texts.extend(num2words_pairs(language, size=2000, low=0, high=max(data.high, 2001), seed=0)["target"])
    return texts


def tokenize_for_objective(splits: DatasetDict, tokenizer, data) -> DatasetDict:
    """Pairs -> (input_ids, labels); a denoising objective noises the target-side text instead."""
    if data.objective == "pairs":
        return tokenize_pairs(splits, tokenizer, data.max_source_length, data.max_target_length)
    texts = DatasetDict(
        {name: part.select_columns(["target"]).rename_column("target", "text") for name, part in splits.items()}
    )
    noise = text_infilling if data.objective == "text_infilling" else span_corruption
    return noise(texts, tokenizer, text_column="text", max_length=data.max_target_length, seed=data.seed)


def evaluation_pairs(part: Dataset, tokenizer, data) -> tuple[list[str], list[str]]:
    """(sources, references) to score: the pairs themselves, or for denoising the noised text and the original."""
    if data.objective == "pairs":
        return list(part["source"]), list(part["target"])
    noised = tokenize_for_objective(DatasetDict(evaluation=part), tokenizer, data)["evaluation"]
    sources = tokenizer.batch_decode(list(noised["input_ids"]), skip_special_tokens=False)
    sources = [s.replace(tokenizer.eos_token, "") for s in sources]
    references = tokenizer.batch_decode(list(noised["labels"]), skip_special_tokens=True)
    return sources, references


__all__ = [
    "evaluation_pairs",
    "load_text_corpus",
    "load_text_splits",
    "load_text_pairs",
    "num2words_languages",
    "num2words_pairs",
    "num2words_splits",
    "seq2seq_collator",
    "tokenize_for_objective",
    "tokenize_pairs",
    "tokenizer_corpus",
]
