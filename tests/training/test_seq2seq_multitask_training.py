"""Multi-task Seq2Seq runs: one model for several num2words languages, in every sharing mode."""

import json
import os

import pytest
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
