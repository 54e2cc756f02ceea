"""Multi-task GAN runs: a shared bottom with per-task heads, task mixing and every loss weighting."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from tiny_recipes import tiny_gan_recipe
from transformers import AutoModel

from hf_genxfer.recipes import RecipeError, validate_recipe
from hf_genxfer.training.loop import train


def multitask_recipe(output_dir, weighting="equal", mixing="proportional", shared_blocks=1, **training):
    raw = tiny_gan_recipe(output_dir, **training)
    raw["model"].update(task_names=["low", "high"], shared_blocks=shared_blocks)
    raw["data"]["tasks"] = {
        "low": {"classes": [0, 1, 2, 3, 4]},
        "high": {"classes": [5, 6, 7, 8, 9], "shots_per_class": 5},
    }
    raw["multitask"] = {"mixing": mixing, "loss_weighting": weighting}
    if weighting == "fixed":
        raw["multitask"]["task_weights"] = {"low": 1.0, "high": 2.0}
    return raw


@pytest.mark.parametrize("weighting", ["equal", "fixed", "uncertainty", "gradnorm", "pcgrad"])
def test_every_loss_weighting_trains(tmp_path, weighting):
    raw = multitask_recipe(tmp_path / "run", weighting=weighting, mixing="temperature", max_steps=3)
    metrics = train(validate_recipe(raw))
    assert set(metrics["per_task"]) == {"low", "high"}
    assert all(m["fid"] > 0 and m["num_generated"] == 64 for m in metrics["per_task"].values())
    history = json.load(open(os.path.join(raw["output_dir"], "training_history.json")))
    logged = set().union(*history)
    assert {"loss_g/low", "loss_g/high", "weight/low", "weight/high"} <= logged
    if weighting == "fixed":
        assert history[-1]["weight/high"] == 2.0


@pytest.mark.parametrize("shared_blocks", [0, None])
def test_saved_model_keeps_every_task(tmp_path, shared_blocks):
    raw = multitask_recipe(tmp_path / "run", shared_blocks=shared_blocks, mixing="round_robin", max_steps=2)
    train(validate_recipe(raw))
    model = AutoModel.from_pretrained(raw["output_dir"]).eval()
    assert model.config.task_names == ["low", "high"]
    latents, labels = torch.randn(2, 16), torch.tensor([5, 6])
    assert not torch.equal(model(latents, labels, task="low").images, model(latents, labels, task="high").images)
    from hf_genxfer import GANPipeline

    out = GANPipeline.from_pretrained(raw["output_dir"])(batch_size=2, task="high", class_labels=7, output_type="pt")
    assert out.images.shape == (2, 1, 8, 8)


def test_multitask_resume_is_exact(tmp_path):
    straight = multitask_recipe(tmp_path / "straight", weighting="uncertainty", max_steps=4)
    train(validate_recipe(straight))
    crashed = multitask_recipe(tmp_path / "crashed", weighting="uncertainty", max_steps=4)
    train(validate_recipe(crashed), stop_after_steps=2)
    crashed["training"]["resume_from_checkpoint"] = "latest"
    train(validate_recipe(crashed))
    a = load_file(os.path.join(straight["output_dir"], "model.safetensors"))
    b = load_file(os.path.join(crashed["output_dir"], "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_multitask_recipe_errors(tmp_path):
    raw = multitask_recipe(tmp_path / "x")
    raw["data"]["tasks"]["mid"] = {"classes": [3]}
    with pytest.raises(RecipeError, match="must name the same tasks"):
        validate_recipe(raw)
    raw = multitask_recipe(tmp_path / "x")
    raw["data"]["tasks"]["low"]["clases"] = [1]
    with pytest.raises(RecipeError, match="data.tasks.low.clases. Did you mean 'classes'"):
        validate_recipe(raw)
    raw = multitask_recipe(tmp_path / "x", weighting="fixed")
    del raw["multitask"]["task_weights"]
    with pytest.raises(RecipeError, match="needs multitask.task_weights"):
        validate_recipe(raw)


def test_adding_a_task_measures_forgetting(tmp_path):
    old = multitask_recipe(tmp_path / "old", max_steps=2)
    train(validate_recipe(old))
    raw = multitask_recipe(tmp_path / "new", max_steps=2)
    raw["init_from"] = old["output_dir"]
    raw["model"] = {"task_names": ["low", "high", "odd"]}
    raw["data"]["tasks"]["odd"] = {"classes": [1, 3, 5, 7, 9], "shots_per_class": 3}
    raw["multitask"] = {"train_tasks": ["odd"], "init_new_tasks_from": {"odd": "high"}}
    raw["transfer"] = {"freeze": ["generator.mapping*", "generator.blocks.*", "generator.class_embedding*"]}
    metrics = train(validate_recipe(raw))
    assert set(metrics["per_task"]) == {"low", "high", "odd"}
    assert set(metrics["forgetting_fid"]) == {"low", "high"}
    before = load_file(os.path.join(old["output_dir"], "model.safetensors"))
    after = load_file(os.path.join(raw["output_dir"], "model.safetensors"))
    # The shared generator bottom was frozen; the old tasks' generator heads saw no data: both unchanged.
    for key in before:
        if key.startswith(
            ("generator.mapping", "generator.blocks", "generator.task_heads.low", "generator.task_heads.high")
        ):
            torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    report = json.load(open(os.path.join(raw["output_dir"], "transfer_report.json")))["parameters"]
    statuses = {e["name"]: e["status"] for e in report["entries"]}
    assert statuses["generator.task_heads.odd.to_image.weight"] == "initialised"  # then copied from "high"


def test_multitask_batches_are_grouped_by_task(tmp_path):
    # The discriminator's minibatch-std groups are runs of consecutive images: each must hold one task's images.
    from hf_genxfer.training.gan import GANRun
    from hf_genxfer.training.loop import build_accelerator

    recipe = validate_recipe(multitask_recipe(tmp_path / "run", mixing="temperature", max_steps=2, batch_size=16))
    run = GANRun(recipe, build_accelerator(recipe))
    mixed = 0
    for batch_number in range(8):
        indices, task_ids = run._batch(batch_number)
        assert torch.equal(task_ids, torch.sort(task_ids).values)
        mixed += len(torch.unique(task_ids)) > 1
        # Sorting keeps each example with its task: the image's label belongs to that task's classes.
        labels = run.train_labels[indices]
        assert all(int(label) < 5 for label in labels[task_ids == 0]) and all(
            int(label) >= 5 for label in labels[task_ids == 1]
        )
    assert mixed > 0
