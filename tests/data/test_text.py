"""num2words corpora, text-pair loaders, the corpus-trained tokenizers and the Seq2Seq collator."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from hf_genxfer.data.text import (
    load_text_pairs,
    num2words_languages,
    num2words_pairs,
    num2words_splits,
    seq2seq_collator,
    tokenize_pairs,
)
from hf_genxfer.data.tokenization import SPECIAL_TOKENS, train_tokenizer
from hf_genxfer.errors import DataError

ACCENTED_TEXTS = [
    "quatre mille vingt et un",
    "quatre-vingt-dix-neuf  élèves à l'école, déjà !",
    "viertausendeinundzwanzig",
    "dreißig Männer über Größe\nÄrger",
    "  leading and trailing spaces  ",
]


@pytest.fixture(scope="module")
def splits():
    return num2words_splits("en", train_size=300, validation_size=50, test_size=50, high=2_000, seed=3)


@pytest.fixture(scope="module")
def char_tokenizer(splits):
    texts = [text for part in splits.values() for column in ("source", "target") for text in part[column]]
    return train_tokenizer(texts)


# num2words corpora


def test_num2words_content():
    pairs = num2words_pairs("en", size=10_000, low=0, high=10_000)
    row = pairs[list(pairs["source"]).index("4021")]
    assert row == {"source": "4021", "target": "four thousand and twenty-one", "language": "en"}
    assert num2words_pairs("de", size=1, low=4021, high=4022)[0]["target"] == "viertausendeinundzwanzig"
    assert num2words_pairs("fr", size=1, low=21, high=22)[0]["target"] == "vingt et un"


def test_splits_never_share_a_number(splits):
    assert {name: len(part) for name, part in splits.items()} == {"train": 300, "validation": 50, "test": 50}
    numbers = {name: set(part["source"]) for name, part in splits.items()}
    assert sum(len(values) for values in numbers.values()) == 400  # distinct inside each split too
    assert not numbers["train"] & numbers["validation"]
    assert not numbers["train"] & numbers["test"]
    assert not numbers["validation"] & numbers["test"]
    assert all(0 <= int(number) < 2_000 for values in numbers.values() for number in values)
    assert splits["train"].column_names == ["source", "target", "language"]


def test_splits_are_seeded():
    first = num2words_splits("fr", 20, 5, 5, seed=7)
    assert list(first["test"]["source"]) == list(num2words_splits("fr", 20, 5, 5, seed=7)["test"]["source"])
    assert list(first["train"]["source"]) != list(num2words_splits("fr", 20, 5, 5, seed=8)["train"]["source"])


def test_whole_range_can_be_split():
    splits = num2words_splits("es", train_size=6, validation_size=2, test_size=2, low=10, high=20)
    assert sorted(int(n) for part in splits.values() for n in part["source"]) == list(range(10, 20))


@pytest.mark.parametrize("language", ["en", "fr", "de", "es_CO", "ja"])
def test_any_num2words_language(language):
    assert language in num2words_languages()
    pairs = num2words_pairs(language, size=3)
    assert set(pairs["language"]) == {language} and all(pairs["target"])


def test_unknown_language_lists_valid_codes():
    with pytest.raises(ValueError, match=r"Unknown num2words language 'xx'.*en, fr, de"):
        num2words_pairs("xx")
    with pytest.raises(ValueError, match="Unknown num2words language"):
        num2words_splits("english")


def test_numbers_a_converter_cannot_spell_are_named():
    # num2words 0.5.14's Amharic converter fails on some numbers; the error says which.
    with pytest.raises(ValueError, match=r"num2words cannot spell 6651 in 'am'"):
        num2words_pairs("am", size=1, low=6651, high=6652)


def test_impossible_sizes_are_rejected():
    with pytest.raises(ValueError, match=r"Cannot draw 12 distinct numbers from \[0, 10\)"):
        num2words_splits("en", train_size=10, validation_size=1, test_size=1, high=10)
    with pytest.raises(ValueError, match="low < high"):
        num2words_pairs("en", size=1, low=5, high=5)
    with pytest.raises(ValueError, match="`validation_size` must be >= 0"):
        num2words_splits("en", validation_size=-1)


# text-pair files


def test_load_json_lines_and_rename(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"de": f"{n}", "en": f"number {n}", "extra": n} for n in range(5)]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    pairs = load_text_pairs(str(path), source_column="de", target_column="en")
    assert pairs.column_names == ["source", "target"]
    assert pairs[2] == {"source": "2", "target": "number 2"}


def test_load_csv_keeps_digits_as_text(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("digits,words\n7,seven\n12,twelve\n")
    pairs = load_text_pairs(str(path), "digits", "words", split=None)
    assert list(pairs) == ["train"]
    assert pairs["train"][1] == {"source": "12", "target": "twelve"}
    # Columns can also swap roles.
    assert load_text_pairs(str(path), "words", "digits")[0] == {"source": "seven", "target": "7"}


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"a": "1", "b": "one"}]))
    with pytest.raises(ValueError, match="no column 'target' for the target text"):
        load_text_pairs(str(path), source_column="a")


def test_unsupported_or_missing_file(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("1 one\n")
    with pytest.raises(ValueError, match="must be a .json, .jsonl, .csv file"):
        load_text_pairs(str(path))
    with pytest.raises(DataError, match="No such text file"):
        load_text_pairs(str(tmp_path / "missing.csv"))


# tokenizers


@pytest.mark.parametrize("kind", ["char", "byte"])
def test_tokenizer_round_trip_with_accents(kind, tmp_path):
    tokenizer = train_tokenizer(ACCENTED_TEXTS, kind=kind)
    assert [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    for text in ACCENTED_TEXTS:
        ids = tokenizer(text)["input_ids"]
        assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(reloaded) == len(tokenizer)
    for text in ACCENTED_TEXTS:
        assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert reloaded.decode(reloaded(text)["input_ids"], skip_special_tokens=True) == text
    assert reloaded.mask_token_id == tokenizer.mask_token_id == 4


def test_char_tokenizer_is_one_token_per_character():
    tokenizer = train_tokenizer(["été"])
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("2 été")["input_ids"])
    assert tokens == ["2", "<unk>", "é", "t", "é", "</s>"]  # digits always known; the space was never seen
    assert train_tokenizer(["été"]).get_vocab() == tokenizer.get_vocab()  # deterministic ids


def test_sentinels_and_byte_vocab_size():
    tokenizer = train_tokenizer(["abc"], kind="byte", vocab_size=300, num_sentinels=3)
    assert tokenizer.convert_tokens_to_ids("<extra_id_2>") == 7
    assert len(tokenizer) <= 300
    assert tokenizer.decode(tokenizer("a <mask> c")["input_ids"]) == "a <mask> c</s>"


def test_bad_tokenizer_arguments():
    with pytest.raises(ValueError, match="`kind` must be one of char, byte"):
        train_tokenizer(["a"], kind="word")
    with pytest.raises(ValueError, match="`vocab_size` must be at least 261"):
        train_tokenizer(["a"], kind="byte", vocab_size=100)


# tokenize + collate


def test_tokenize_and_collate(splits, char_tokenizer):
    tokenized = tokenize_pairs(splits, char_tokenizer, max_source_length=8, max_target_length=64)
    assert tokenized["train"].column_names == ["input_ids", "attention_mask", "labels"]
    features = [tokenized["train"][index] for index in range(4)]
    batch = seq2seq_collator(char_tokenizer)(features)
    longest_input = max(len(feature["input_ids"]) for feature in features)
    longest_label = max(len(feature["labels"]) for feature in features)
    assert batch["input_ids"].shape == (4, longest_input)
    assert batch["labels"].shape == (4, longest_label)
    for row, feature in enumerate(features):
        length, label_length = len(feature["input_ids"]), len(feature["labels"])
        assert batch["input_ids"][row, length:].eq(char_tokenizer.pad_token_id).all()
        assert batch["attention_mask"][row].sum() == length
        assert batch["labels"][row, label_length:].eq(-100).all()
        assert batch["labels"][row, :label_length].tolist() == feature["labels"]
    source = char_tokenizer.decode(features[0]["input_ids"], skip_special_tokens=True)
    target = char_tokenizer.decode(features[0]["labels"], skip_special_tokens=True)
    assert splits["train"][0] == {"source": source, "target": target, "language": "en"}


def test_collator_with_model_adds_decoder_inputs(splits, char_tokenizer):
    from hf_genxfer.models.seq2seq import Seq2SeqConfig, Seq2SeqModel, default_backbone_config

    backbone = default_backbone_config(char_tokenizer, d_model=16, encoder_ffn_dim=32, decoder_ffn_dim=32)
    model = Seq2SeqModel(Seq2SeqConfig(backbone=backbone))
    tokenized = tokenize_pairs(splits["validation"], char_tokenizer)
    batch = seq2seq_collator(char_tokenizer, model=model)([tokenized[index] for index in range(3)])
    assert batch["decoder_input_ids"][:, 0].eq(char_tokenizer.bos_token_id).all()
    assert not batch["decoder_input_ids"].eq(-100).any()
    assert torch.isfinite(model(**batch).loss)


def test_test_numbers_do_not_depend_on_the_training_size():
    small = num2words_splits("en", train_size=25, validation_size=20, test_size=50, high=100_000, seed=3)
    large = num2words_splits("en", train_size=1000, validation_size=20, test_size=50, high=100_000, seed=3)
    assert small["test"]["source"] == large["test"]["source"]
    assert small["validation"]["source"] == large["validation"]["source"]
    assert small["train"]["source"] == large["train"]["source"][:25]
