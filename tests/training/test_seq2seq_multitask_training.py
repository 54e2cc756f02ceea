"""Multi-task Seq2Seq runs: one model for several num2words languages, in every sharing mode."""

import json
import os

import pytest
import torch
from tiny_recipes import tiny_seq2seq_recipe
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_genxfer.cli import main
from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.loop import train


def multitask_recipe(output_dir, sharing, weighting="equal", **training):
    raw = tiny_seq2seq_recipe(output_dir, **training)
    raw["model"].update(sharing=sharing, task_names=["en", "fr"])
    raw["data"]["tasks"] = {"en": {"language": "en"}, "fr": {"language": "fr", "train_size": 16}}
    raw["multitask"] = {"mixing": "temperature", "loss_weighting": weighting}
    return raw


@pytest.mark.parametrize("sharing", ["hard", "shared_encoder", "shared_structure"])
def test_sharing_modes_train_and_score_each_task(tmp_path, sharing, capsys):
    raw = multitask_recipe(tmp_path / "run", sharing, max_steps=3, eval_every=2)
    metrics = train(validate_recipe(raw))
    assert set(metrics["per_task"]) == {"en", "fr"}
    assert all(m["num_examples"] == 8 for m in metrics["per_task"].values()) and metrics["num_examples"] == 16
    history = json.load(open(os.path.join(raw["output_dir"], "training_history.json")))
    assert {"loss/en", "loss/fr"} <= set().union(*history)
    # The saved folder keeps every task; the CLI and the Auto classes generate per task.
    model = AutoModelForSeq2SeqLM.from_pretrained(raw["output_dir"])
    tokenizer = AutoTokenizer.from_pretrained(raw["output_dir"])
    assert model.config.task_names == ["en", "fr"] and model.config.sharing == sharing
    ids = model.generate(**tokenizer(["12"], return_tensors="pt"), task="fr", max_new_tokens=8)
    assert ids.shape[0] == 1
    assert main(["generate", raw["output_dir"], "12", "--task", "fr"]) == 0
    assert capsys.readouterr().out.startswith("12\t")
    assert main(["eval", raw["output_dir"]]) == 0
    assert set(json.loads(capsys.readouterr().out)["per_task"]) == {"en", "fr"}


@pytest.mark.parametrize("weighting", ["uncertainty", "gradnorm", "pcgrad"])
def test_loss_weightings_on_the_shared_encoder(tmp_path, weighting):
    raw = multitask_recipe(tmp_path / "run", "shared_encoder", weighting=weighting, max_steps=2)
    metrics = train(validate_recipe(raw))
    assert metrics["step"] == 2
    history = json.load(open(os.path.join(raw["output_dir"], "training_history.json")))
    assert {"weight/en", "weight/fr"} <= set().union(*history)


@pytest.mark.parametrize("sharing", ["shared_encoder", "hard"])
def test_adding_a_language_through_a_recipe_measures_forgetting(tmp_path, sharing):
    from safetensors.torch import load_file

    old = multitask_recipe(tmp_path / "old", sharing, max_steps=2)
    train(validate_recipe(old))
    raw = multitask_recipe(tmp_path / "new", sharing, max_steps=2)
    raw["init_from"] = old["output_dir"]
    raw["model"] = {"task_names": ["en", "fr", "de"]}
    raw["data"]["tasks"]["de"] = {"language": "de", "train_size": 16}
    raw["multitask"] = {"train_tasks": ["de"], "init_new_tasks_from": {"de": "fr"}}
    if sharing == "shared_encoder":
        raw["transfer"] = {"freeze": ["backbone.model.encoder.*", "backbone.model.shared.*"]}
    metrics = train(validate_recipe(raw))
    assert set(metrics["per_task"]) == {"en", "fr", "de"}
    assert set(metrics["forgetting_chrf"]) == {"en", "fr"} and set(metrics["forgetting_exact_match"]) == {"en", "fr"}
    before = json.load(open(os.path.join(old["output_dir"], "metrics.json")))["per_task"]
    assert metrics["forgetting_chrf"]["en"] == pytest.approx(before["en"]["chrf"] - metrics["per_task"]["en"]["chrf"])
    model = AutoModelForSeq2SeqLM.from_pretrained(raw["output_dir"])
    assert model.config.task_names == ["en", "fr", "de"]
    if sharing == "shared_encoder":
        # The frozen shared encoder and the old tasks' decoders (no data of theirs was drawn) are unchanged.
        old_weights = load_file(os.path.join(old["output_dir"], "model.safetensors"))
        new_weights = load_file(os.path.join(raw["output_dir"], "model.safetensors"))
        kept = [k for k in old_weights if ".encoder." in k or "task_parts.en." in k or "task_parts.fr." in k]
        assert kept and all(k in new_weights for k in kept)
        for key in kept:
            torch.testing.assert_close(new_weights[key], old_weights[key], rtol=0, atol=0, msg=key)
    else:
        tokenizer = AutoTokenizer.from_pretrained(raw["output_dir"])
        assert "<task:de>" in tokenizer.get_vocab() and len(model.config.task_token_ids) == 3
