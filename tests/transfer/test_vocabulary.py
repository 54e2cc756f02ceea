"""Vocabulary extension on the tokenizers of every kind: new tokens get ids of their own, never a special token's."""

import pytest
import torch
from architectures import ARCHITECTURES, build_backbone_folder  # tests/ is on sys.path
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_genxfer.models.seq2seq import Seq2SeqModel
from hf_genxfer.transfer.vocabulary import extend_vocabulary

TEXT = ["двадцать шесть тысяч", "Ωμέγα 北京"]


def numbered_specials(tokenizer) -> dict[str, int]:
    """Language codes and other special tokens with their ids (M2M100 numbers its codes past len(tokenizer))."""
    specials = dict(getattr(tokenizer, "lang_token_to_id", None) or {})
    specials.update({token: tokenizer.convert_tokens_to_ids(token) for token in tokenizer.all_special_tokens})
    return specials


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_added_tokens_take_free_ids_and_survive_a_reload(name, tmp_path):
    folder = build_backbone_folder(name, tmp_path / "backbone")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = Seq2SeqModel.from_backbone(folder)
    specials = numbered_specials(tokenizer)
    added = extend_vocabulary(model, tokenizer, TEXT)
    ids = [entry["id"] for entry in added]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & set(specials.values())  # M2M100: before the fix, the new tokens took its codes' ids
    assert numbered_specials(tokenizer) == specials  # every code keeps its id
    assert model.get_input_embeddings().weight.shape[0] > max(ids + list(specials.values()))
    for entry in added:  # each added character is one token of its own id (lowercased by uncased tokenizers)
        assert tokenizer(entry["token"], add_special_tokens=False).input_ids == [entry["id"]]
    encoded = tokenizer(TEXT[0]).input_ids
    tokenizer.save_pretrained(tmp_path / "extended")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "extended")
    assert reloaded(TEXT[0]).input_ids == encoded
    assert numbered_specials(reloaded) == specials
    assert reloaded.convert_tokens_to_ids([entry["token"] for entry in added]) == ids
    # The resized model saves and loads with its new rows (EncoderDecoderModel: both sides resized).
    if added:
        model.save_pretrained(tmp_path / "model")
        loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "model")
        for part in (loaded.get_input_embeddings(), loaded.get_output_embeddings()):
            assert part.weight.shape[0] == model.get_input_embeddings().weight.shape[0]
        batch = tokenizer(TEXT, return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = loaded(**batch, labels=labels).loss  # the new ids run through encoder, decoder and LM head
        assert torch.isfinite(loss)


def test_nothing_is_added_when_the_tokenizer_covers_the_text(tmp_path):
    folder = build_backbone_folder("bart", tmp_path / "backbone")  # byte-level BPE: every character
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    rows = model.get_input_embeddings().weight.clone()
    assert extend_vocabulary(model, tokenizer, TEXT) == []
    assert torch.equal(model.get_input_embeddings().weight, rows)
