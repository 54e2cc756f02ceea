import json
import os

import pytest
import torch
from safetensors.torch import load_file

from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.checkpointing import list_checkpoints
from hf_genxfer.training.loop import train


def _weights(folder):
    return load_file(os.path.join(folder, "model.safetensors"))


def test_a_few_steps_change_the_weights_and_write_the_run_folder(gan_recipe_factory):
    raw = gan_recipe_factory(report_to="tensorboard")
    recipe = validate_recipe(raw)
    torch.manual_seed(0)
    metrics = train(recipe)
    out = recipe.output_dir
    for name in (
        "config.json",
        "model.safetensors",
        "model_index.json",
        "metrics.json",
        "samples.png",
        "genxfer_recipe.yaml",
    ):
        assert os.path.isfile(os.path.join(out, name)), name
    assert os.path.isfile(os.path.join(out, "generator_model", "model.safetensors"))
    assert os.path.isdir(os.path.join(out, "samples")) and len(os.listdir(os.path.join(out, "samples"))) >= 2
    assert any(
        name.startswith("events.out.tfevents") for _, _, files in os.walk(os.path.join(out, "logs")) for name in files
    )
    history = json.load(open(os.path.join(out, "training_history.json")))
    assert len(history) == 4 and all(
        torch.isfinite(torch.tensor(h["loss_d"])) and abs(h["loss_g"]) < 1e3 for h in history
    )
    assert metrics["step"] == 4 and metrics["fid"] > 0 and metrics["num_generated"] == 64

    # The weights moved away from a fresh model of the same seed.
    from hf_genxfer.models.gan import GANConfig, GANModel

    torch.manual_seed(0)
    fresh = GANModel(GANConfig(**raw["model"])).state_dict()
    trained = _weights(out)
    changed = [k for k in trained if k in fresh and not torch.equal(trained[k], fresh[k])]
    assert any(k.startswith("generator.") for k in changed) and any(k.startswith("discriminator.") for k in changed)


def test_checkpoints_are_pruned_to_the_limit(gan_recipe_factory):
    recipe = validate_recipe(gan_recipe_factory(max_steps=6, checkpoint_every=1, checkpoints_total_limit=2))
    train(recipe)
    steps = [step for step, _ in list_checkpoints(os.path.join(recipe.output_dir, "checkpoints"))]
    assert steps == [5, 6]


SPEED_OPTIONS = {"channels_last": True, "optimizer_implementation": "fused"}


@pytest.mark.parametrize(
    "accumulation, options", [(1, {}), (2, {}), (1, SPEED_OPTIONS)], ids=["defaults", "accumulation", "speed-options"]
)
def test_resume_continues_the_run_exactly(gan_recipe_factory, accumulation, options):
    straight = validate_recipe(
        gan_recipe_factory("straight", max_steps=4, gradient_accumulation_steps=accumulation, **options)
    )
    train(straight)

    crashed = gan_recipe_factory("crashed", max_steps=4, gradient_accumulation_steps=accumulation, **options)
    train(validate_recipe(crashed), stop_after_steps=2)  # the "crash": the process stops after step 2's checkpoint
    assert not os.path.exists(os.path.join(crashed["output_dir"], "model.safetensors"))
    # A half-written checkpoint from the crash must be ignored.
    os.makedirs(os.path.join(crashed["output_dir"], "checkpoints", ".tmp-checkpoint-3"))
    crashed["training"]["resume_from_checkpoint"] = "latest"
    metrics = train(validate_recipe(crashed))
    assert metrics["step"] == 4

    a, b = _weights(straight.output_dir), _weights(crashed["output_dir"])
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_run_trained_in_segments_keeps_one_schedule_with_lr_schedule_steps(gan_recipe_factory):
    schedule = {"lr_scheduler": "linear", "warmup_steps": 1}
    straight = validate_recipe(gan_recipe_factory("straight", max_steps=4, **schedule))
    train(straight)

    def in_segments(name, **extra):
        raw = gan_recipe_factory(name, max_steps=2, checkpoint_every=2, **schedule, **extra)
        train(validate_recipe(raw))
        raw["training"].update(max_steps=4, resume_from_checkpoint="latest")
        train(validate_recipe(raw))
        return _weights(raw["output_dir"])

    a = _weights(straight.output_dir)
    spanned = in_segments("spanned", lr_schedule_steps=4)
    for key in a:
        torch.testing.assert_close(spanned[key], a[key], rtol=0, atol=0, msg=key)
    # Without it the first segment's schedule ends at its own max_steps (a linear decay to 0 by step 2).
    per_segment = in_segments("per_segment")
    assert any(not torch.equal(per_segment[key], a[key]) for key in a if key.startswith("generator."))


def test_bf16_autocast_runs_on_cpu(gan_recipe_factory, monkeypatch):
    from hf_genxfer.models.gan import GANDiscriminator

    seen = []
    original = GANDiscriminator.forward

    def forward(self, *args, **kwargs):  # the training step's discriminator calls run under bf16 autocast
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GANDiscriminator, "forward", forward)
    recipe = validate_recipe(gan_recipe_factory(max_steps=2, mixed_precision="bf16", ema_decay=None))
    metrics = train(recipe)
    assert metrics["step"] == 2 and metrics["fid"] == metrics["fid"]  # not NaN
    during_training = seen[:4]  # two steps: the discriminator step and the generator step each
    assert during_training and all(enabled and dtype == torch.bfloat16 for enabled, dtype in during_training)
    for tensor in _weights(recipe.output_dir).values():
        assert tensor.dtype == torch.float32  # weights stay float32: autocast changes the arithmetic only


def test_hinge_loss_without_r1(gan_recipe_factory):
    from hf_genxfer.training.gan import discriminator_loss, generator_loss

    real, fake = torch.tensor([0.5, 2.0, -0.5]), torch.tensor([-2.0, 0.3, 0.9])
    expected = torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()
    torch.testing.assert_close(discriminator_loss(real, fake, "hinge"), expected)
    torch.testing.assert_close(generator_loss(fake, "hinge"), -fake.mean())
    assert not torch.allclose(discriminator_loss(real, fake, "non_saturating"), expected)

    raw = gan_recipe_factory(max_steps=2, r1_gamma=0.0, log_every=1)
    raw["model"]["adversarial_loss"] = "hinge"
    raw["model"]["num_classes"] = None
    metrics = train(validate_recipe(raw))
    assert metrics["step"] == 2
    history = json.load(open(os.path.join(raw["output_dir"], "training_history.json")))
    for entry in history:  # no R1 term and logits inside (-1, 1): hinge's loss is 2 - mean(real) + mean(fake)
        assert "r1" not in entry
        assert entry["loss_d"] == pytest.approx(2 - entry["d_real"] + entry["d_fake"], abs=1e-5)


def test_the_auxiliary_classifier_trains_both_sides_and_its_weight_matters(gan_recipe_factory):
    """AC-GAN: the discriminator's class loss on real images and the generator's on its fakes are logged, and the
    generator's update depends on their weight."""
    weights = {}
    for weight in (0.0, 1.0):
        raw = gan_recipe_factory(name=f"aux{weight}", max_steps=3, log_every=1, auxiliary_class_weight=weight)
        raw["model"]["auxiliary_classifier"] = True
        train(validate_recipe(raw))
        history = json.load(open(os.path.join(raw["output_dir"], "training_history.json")))
        assert all(entry["class_d"] > 0 and entry["class_g"] > 0 for entry in history if "loss_d" in entry)
        weights[weight] = _weights(raw["output_dir"])
    assert "discriminator.class_head.weight" in weights[1.0]
    moved = [
        name
        for name, tensor in weights[1.0].items()
        if name.startswith("generator.") and not torch.allclose(tensor, weights[0.0][name], atol=1e-6)
    ]
    assert moved  # the class term changed the generator's steps


def test_mode_seeking_pairs_latents_of_one_class(gan_recipe_factory, monkeypatch):
    """MSGAN: the generator step draws pairs of latents with the same class and logs the term it adds."""
    from hf_genxfer.models.gan import GANGenerator

    calls = []
    original = GANGenerator.forward

    def spy(self, latents, class_labels=None, task=None, return_dict=True):
        if self.training and torch.is_grad_enabled():  # the generator step (the D step draws under no_grad)
            calls.append(class_labels.clone())
        return original(self, latents, class_labels=class_labels, task=task, return_dict=return_dict)

    monkeypatch.setattr(GANGenerator, "forward", spy)
    raw = gan_recipe_factory(max_steps=2, log_every=1, mode_seeking_weight=1.0)
    train(validate_recipe(raw))
    assert len(calls) == 2
    for labels in calls:
        half = len(labels) // 2
        assert torch.equal(labels[:half], labels[half : 2 * half])
    history = json.load(open(os.path.join(raw["output_dir"], "training_history.json")))
    assert all(entry["mode_seeking"] > 0 for entry in history if "loss_g" in entry)


def test_the_progress_bar_follows_tqdm_disable(monkeypatch):
    from hf_genxfer.training.loop import _progress_disabled

    class Main:
        is_local_main_process = True

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert not _progress_disabled(Main())
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert _progress_disabled(Main())
