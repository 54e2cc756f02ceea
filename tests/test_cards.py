import json
import os

from huggingface_hub import ModelCard
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe

from hf_genxfer.cards import build_model_card
from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.loop import train


def test_gan_transfer_card(tmp_path):
    source = tiny_gan_recipe(tmp_path / "source", max_steps=1)
    train(validate_recipe(source))
    target = tiny_gan_recipe(tmp_path / "target", max_steps=2)
    target.update(init_from=source["output_dir"], model={}, transfer={"lora": {"r": 2}})
    metrics = train(validate_recipe(target))
    card = ModelCard.load(os.path.join(target["output_dir"], "README.md"))
    data = card.data.to_dict()
    assert data["library_name"] == "hf_genxfer" and {"gan", "lora", "transfer-learning"} <= set(data["tags"])
    assert "base_model" not in data  # a local folder is named in the text, not as Hub metadata
    results = {m["type"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert results["fid"] == metrics["fid"] and results["kid"] == metrics["kid"]
    assert f"transferred from `{source['output_dir']}`" in card.text and "strategy **lora**" in card.text
    assert "adapter/" in card.text and os.path.isfile(os.path.join(target["output_dir"], "training_curve.png"))
    # The adapter folder gets its own card (PEFT's is a blank template), naming its base and how to load it.
    adapter_card = ModelCard.load(os.path.join(target["output_dir"], "adapter", "README.md"))
    assert adapter_card.data.library_name == "peft" and "lora" in adapter_card.data.tags
    assert "[More Information Needed]" not in adapter_card.text
    assert f'AutoModel.from_pretrained("{source["output_dir"]}")' in adapter_card.text
    assert 'subfolder="adapter"' in adapter_card.text and "rank 2" in adapter_card.text
    assert "A PEFT LoRA adapter" in adapter_card.text  # DoRA adapters say so (tests/training/test_transfer_runs.py)
    assert data["pipeline_tag"] == "unconditional-image-generation"


def test_seq2seq_card_with_examples_and_a_hub_base_model(tmp_path):
    raw = tiny_seq2seq_recipe(tmp_path / "run", max_steps=2)
    train(validate_recipe(raw))
    out = raw["output_dir"]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    card = ModelCard.load(os.path.join(out, "README.md"))
    assert "seq2seq" in card.data.tags and "multi-task" not in card.data.tags
    assert metrics["examples"][0]["source"] in card.text and "exact match" in card.text
    # A recipe that names a Hub id as its source records it as base_model metadata.
    recipe = (
        open(os.path.join(out, "genxfer_recipe.yaml"))
        .read()
        .replace("init_from: scratch", "init_from: org/english-model")
    )
    open(os.path.join(out, "genxfer_recipe.yaml"), "w").write(recipe)
    card_data = build_model_card(out).data
    assert card_data.base_model == "org/english-model" and card_data.base_model_relation == "finetune"
    # transformers 5 has no pipeline for encoder-decoder generation: no pipeline tag, results under a task it knows.
    assert card_data.pipeline_tag is None
    from transformers.pipelines import SUPPORTED_TASKS

    results_task = card_data.to_dict()["model-index"][0]["results"][0]["task"]["type"]
    assert results_task in SUPPORTED_TASKS and "text2text" not in card.content
