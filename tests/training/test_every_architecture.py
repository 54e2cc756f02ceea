"""Every transformers encoder-decoder a user may bring (issue 12): a tiny random backbone of each architecture, saved
as a folder with a tokenizer of its own kind, wraps with outputs equal to the bare backbone's, round-trips through
the Auto classes, decodes the same with and without the cache, and trains with `genxfer train` (full fine-tuning and
LoRA) from `init_from` its folder, then generates with `genxfer generate`."""

import json
import os

import pytest
import torch
import yaml
from architectures import ARCHITECTURES, build_backbone_folder
from tiny_recipes import tiny_seq2seq_recipe
from tolerances import AFTER_RELOAD
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_genxfer.cli import main
from hf_genxfer.models.seq2seq import Seq2SeqModel


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def backbone(request, tmp_path_factory):
    name = request.param
    return name, build_backbone_folder(name, tmp_path_factory.mktemp(name.replace("-", "_")) / "backbone")


def _inputs(folder):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["12", "345 678"], return_tensors="pt", padding=True)
    labels = tokenizer(text_target=["twelve", "three hundred"], return_tensors="pt", padding=True)["input_ids"]
    batch["labels"] = labels.masked_fill(labels == tokenizer.pad_token_id, -100)
    return batch


def test_wrapping_keeps_the_outputs_and_round_trips(backbone, tmp_path):
    name, folder = backbone
    batch = _inputs(folder)
    bare = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    wrapped = Seq2SeqModel.from_backbone(bare).eval()  # the same modules: bitwise
    torch.testing.assert_close(wrapped(**batch).logits, bare(**batch).logits, rtol=0, atol=0)
    from_folder = Seq2SeqModel.from_backbone(folder).eval()  # loaded again: same weights, other memory
    torch.testing.assert_close(from_folder(**batch).logits, bare(**batch).logits, **AFTER_RELOAD)

    bare.save_pretrained(tmp_path / "bare")
    bare_again = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "bare").eval()
    torch.testing.assert_close(bare_again(**batch).logits, bare(**batch).logits, **AFTER_RELOAD)
    wrapped.save_pretrained(tmp_path / "wrapped")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "wrapped").eval()
    assert type(loaded) is Seq2SeqModel and loaded.config.backbone.model_type == bare.config.model_type
    torch.testing.assert_close(loaded(**batch).logits, bare(**batch).logits, **AFTER_RELOAD)

    kwargs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=5)
    cached = loaded.generate(**kwargs, use_cache=True)
    assert torch.equal(cached, loaded.generate(**kwargs, use_cache=False))
    assert torch.equal(cached, bare.generate(**kwargs))


def test_the_collator_builds_decoder_inputs_as_the_backbone_does(backbone):
    # DataCollatorForSeq2Seq(model=...) asks the model for decoder inputs; backbones without the method (M2M100,
    # Blenderbot, BlenderbotSmall) crashed training before.
    from hf_genxfer.data.text import seq2seq_collator

    name, folder = backbone
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = Seq2SeqModel.from_backbone(folder).eval()
    features = [
        {"input_ids": tokenizer(s)["input_ids"], "labels": tokenizer(text_target=t)["input_ids"]}
        for s, t in (("12", "twelve"), ("345", "three hundred and forty-five"))
    ]
    collated = seq2seq_collator(tokenizer, model=model)(features)
    assert "decoder_input_ids" in collated
    with_inputs = model(**collated)
    without = model(**{k: v for k, v in collated.items() if k != "decoder_input_ids"})
    counted = collated["labels"] != -100  # positions past a label's end may differ (masked differently)
    torch.testing.assert_close(with_inputs.logits[counted], without.logits[counted], rtol=0, atol=0)
    torch.testing.assert_close(with_inputs.loss, without.loss, rtol=0, atol=0)


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_genxfer_trains_from_the_folder_and_generates(backbone, tmp_path, capsys, strategy):
    name, folder = backbone
    raw = tiny_seq2seq_recipe(tmp_path / "run", max_steps=2)
    raw.update(init_from=folder, model={})
    raw["data"].update(train_size=16, validation_size=4, test_size=4)
    if strategy == "lora":
        raw["transfer"] = {"lora": {"r": 2, "alpha": 4}}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    assert main(["train", str(recipe)]) == 0
    metrics = json.load(open(tmp_path / "run" / "metrics.json"))
    assert metrics["step"] == 2 and 0 <= metrics["chrf"] <= 100
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "run"), "12", "345"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["12", "345"]
    if strategy == "lora":
        adapter = json.load(open(tmp_path / "run" / "adapter" / "adapter_config.json"))
        assert adapter["base_model_name_or_path"] == folder
        assert not any(target.startswith("backbone.") for target in adapter["target_modules"])
        # PEFT's own loader applies it to the bare backbone: the merged run folder gives the same logits.
        from peft import AutoPeftModelForSeq2SeqLM

        batch = _inputs(folder)
        adapted = AutoPeftModelForSeq2SeqLM.from_pretrained(str(tmp_path / "run" / "adapter")).eval()
        merged = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run").eval()
        torch.testing.assert_close(adapted(**batch).logits, merged(**batch).logits, rtol=1e-4, atol=1e-5)
    assert os.path.isfile(tmp_path / "run" / "README.md")


LANGUAGE_CODES = {"mbart": ("en_XX", "ru_RU"), "m2m_100": ("en", "ru"), "nllb": ("eng_Latn", "rus_Cyrl")}


@pytest.mark.parametrize("name", list(LANGUAGE_CODES))
def test_language_codes_tokenise_train_generate_and_reach_the_card(tmp_path, name):
    from hf_genxfer.recipes import validate_recipe
    from hf_genxfer.training.loop import train

    folder = build_backbone_folder(name, tmp_path / "backbone")
    source_code, target_code = LANGUAGE_CODES[name]
    raw = tiny_seq2seq_recipe(tmp_path / "run", max_steps=2)
    raw.update(init_from=folder, model={})
    raw["data"].update(language="ru", train_size=16, validation_size=4, test_size=4, source_language_code=source_code)
    raw["data"]["target_language_code"] = target_code
    train(validate_recipe(raw))
    run = tmp_path / "run"
    tokenizer = AutoTokenizer.from_pretrained(run)
    code_id = tokenizer.get_lang_id(target_code) if hasattr(tokenizer, "get_lang_id") else None
    code_id = code_id if code_id is not None else tokenizer.convert_tokens_to_ids(target_code)
    labels = tokenizer(text_target="двенадцать")["input_ids"]
    generation = json.load(open(run / "generation_config.json"))
    model = AutoModelForSeq2SeqLM.from_pretrained(run)
    output = model.generate(**tokenizer(["12"], return_tensors="pt"), max_new_tokens=4)
    if name == "mbart":  # the code ends each text; the decoder starts from it
        assert labels[-1] == code_id and generation["decoder_start_token_id"] == code_id
        assert output[0, 0] == code_id
    else:  # the code starts each text; generation is forced to write it first
        assert labels[0] == code_id and generation["forced_bos_token_id"] == code_id
        assert output[0, 1] == code_id
    assert f"targets `{target_code}`" in (run / "README.md").read_text()
    # A code the tokenizer does not know is one sentence.
    from hf_genxfer.errors import DataError

    raw["data"]["target_language_code"] = "xx_YY"
    raw["output_dir"] = str(tmp_path / "bad")
    with pytest.raises(DataError, match="is not a language code of this"):
        train(validate_recipe(raw))
