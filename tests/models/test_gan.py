import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassFieldValidationError
from PIL import Image
from tiny_recipes import TINY_GAN_CONFIG
from tolerances import AFTER_RELOAD
from transformers import AutoConfig, AutoModel

import hf_genxfer  # noqa: F401  (registers the Auto classes)
from hf_genxfer.models.gan import GANConfig, GANDiscriminator, GANGenerator, GANModel, GANPipeline

TINY = TINY_GAN_CONFIG


@pytest.mark.parametrize("num_classes", [None, 3])
def test_shapes(num_classes):
    model = GANModel(GANConfig(**TINY, num_classes=num_classes, image_channels=3)).eval()
    labels = None if num_classes is None else torch.tensor([0, 1, 2, 0])
    images = model(torch.randn(4, 8), class_labels=labels).images
    assert images.shape == (4, 3, 16, 16)
    assert images.min() >= -1 and images.max() <= 1
    assert model.discriminator(images, class_labels=labels).logits.shape == (4,)


def test_generator_has_no_transposed_convolutions():
    model = GANModel(GANConfig(**TINY))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("image_size", 12, "power of two from 8 to 256"),
        ("image_size", 512, "from 8 to 256"),
        ("image_channels", 0, "image_channels must be an integer from 1 to 4"),
        ("latent_size", -1, "latent_size"),
        ("num_classes", 1, "num_classes must be an integer from 2"),
        ("adversarial_loss", "wasserstein", "adversarial_loss must be one of non_saturating, hinge"),
        ("layers_per_block", 9, "layers_per_block must be an integer from 1 to 4"),
    ],
)
def test_bad_config_values_are_rejected(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        GANConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [("image_size", "8"), ("image_size", 8.0), ("latent_size", True), ("minibatch_std", 1), ("task_names", "ab")],
)
def test_config_fields_of_the_wrong_type_are_rejected_by_name(field, value):
    # `@strict` checks each field's annotation as it is set (a quoted number in a hand-edited config.json).
    with pytest.raises(StrictDataclassFieldValidationError, match=f"field '{field}'"):
        GANConfig(**{field: value})


def test_config_accepts_what_json_and_people_write():
    config = GANConfig(negative_slope=0, task_names=("a", "b"), shared_blocks=1)
    assert config.negative_slope == 0.0 and isinstance(config.negative_slope, float)
    assert config.task_names == ["a", "b"]
    assert GANConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def test_conditioning_mismatch_is_explained():
    conditional = GANModel(GANConfig(**TINY, num_classes=3))
    with pytest.raises(ValueError, match="pass class_labels"):
        conditional(torch.randn(2, 8))
    unconditional = GANModel(GANConfig(**TINY))
    with pytest.raises(ValueError, match="drop class_labels"):
        unconditional(torch.randn(2, 8), class_labels=torch.tensor([0, 1]))


@pytest.mark.parametrize("num_classes,style_mapping_layers", [(None, 0), (4, 0), (4, 2), (None, 1)])
def test_auto_round_trip_gives_identical_outputs(tmp_path, num_classes, style_mapping_layers):
    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, num_classes=num_classes, style_mapping_layers=style_mapping_layers)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, GANConfig) and config.num_classes == num_classes
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, GANModel)
    latents = torch.randn(4, 8)
    labels = None if num_classes is None else torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(loaded(latents, labels).images, model(latents, labels).images, **AFTER_RELOAD)
    images = model(latents, labels).images
    torch.testing.assert_close(
        loaded.discriminator(images, labels).logits, model.discriminator(images, labels).logits, **AFTER_RELOAD
    )
    assert isinstance(loaded.generator, GANGenerator) and isinstance(loaded.discriminator, GANDiscriminator)


def test_pipeline_is_deterministic_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, num_classes=5)).eval()
    pipe = GANPipeline(generator_model=model.generator)
    first = pipe(batch_size=6, generator=torch.Generator().manual_seed(0))
    assert len(first.images) == 6 and isinstance(first.images[0], Image.Image)
    assert first.images[0].size == (16, 16)
    assert first.class_labels.shape == (6,) and int(first.class_labels.max()) < 5
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").is_file() and (tmp_path / "generator_model" / "model.safetensors").is_file()
    loaded = GANPipeline.from_pretrained(tmp_path)
    a = loaded(batch_size=6, generator=torch.Generator().manual_seed(0), output_type="np")
    b = pipe(batch_size=6, generator=torch.Generator().manual_seed(0), output_type="np")
    assert a.images.shape == (6, 16, 16, 1) and 0 <= a.images.min() and a.images.max() <= 1
    np.testing.assert_allclose(a.images, b.images, **AFTER_RELOAD)
    np.testing.assert_array_equal(a.class_labels, b.class_labels)
    c = loaded(batch_size=6, generator=torch.Generator().manual_seed(1), output_type="pt")
    assert c.images.shape == (6, 1, 16, 16) and not torch.equal(
        c.images, torch.from_numpy(a.images).permute(0, 3, 1, 2)
    )


def test_pipeline_class_labels_and_errors():
    pipe = GANPipeline(generator_model=GANModel(GANConfig(**TINY, num_classes=5)).generator)
    out = pipe(batch_size=3, class_labels=2, output_type="pt")
    assert out.class_labels.tolist() == [2, 2, 2]
    out = pipe(batch_size=3, class_labels=[0, 1, 4], output_type="pt")
    assert out.class_labels.tolist() == [0, 1, 4]
    with pytest.raises(ValueError, match="class_labels must lie in"):
        pipe(batch_size=2, class_labels=7)
    with pytest.raises(ValueError, match="output_type"):
        pipe(batch_size=1, output_type="jpeg")
    unconditional = GANPipeline(generator_model=GANModel(GANConfig(**TINY)).generator)
    assert unconditional(batch_size=2, output_type="pt").class_labels is None


@pytest.mark.parametrize("style_mapping_layers", [0, 2])
def test_peft_lora_reaches_every_generator_layer(style_mapping_layers):
    from peft import LoraConfig, get_peft_model

    model = GANModel(GANConfig(**TINY, num_classes=3, style_mapping_layers=style_mapping_layers))
    targets = [
        name
        for name, module in model.generator.named_modules()
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    peft_model = get_peft_model(model.generator, LoraConfig(r=2, target_modules=targets))
    wrapped = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A")]
    assert len(wrapped) == len(targets)
    images = peft_model(torch.randn(2, 8), class_labels=torch.tensor([0, 1])).images
    assert images.shape == (2, 1, 16, 16)


def _effective_spectral_norms(discriminator) -> dict[str, float]:
    """The largest singular value of every spectral-normed layer's effective weight, as eval mode uses it."""
    discriminator.eval()
    norms = {}
    with torch.no_grad():
        for name, module in discriminator.named_modules():
            if hasattr(module, "parametrizations"):
                norms[name] = float(torch.linalg.matrix_norm(module.weight.flatten(1), ord=2))
    return norms


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"num_classes": 4},
        {"task_names": ["low", "high"], "num_classes": 4},
        {"image_size": 32, "base_width": 16, "max_width": 64, "layers_per_block": 2},
    ],
    ids=["unconditional", "conditional", "multitask", "wider"],
)
def test_a_new_discriminator_is_one_lipschitz_in_eval_mode(fields):
    # spectral_norm estimates its singular vectors when it wraps a layer; post_init's initialisation replaces the
    # weights afterwards, and the estimates must follow them (they were 6.7 to 149 before the fix).
    norms = _effective_spectral_norms(GANModel(GANConfig(**{**TINY, **fields})).discriminator)
    assert len(norms) >= 5
    assert all(abs(norm - 1) < 0.05 for norm in norms.values()), norms


def test_a_reinitialised_discriminator_is_one_lipschitz(tmp_path):
    from hf_genxfer.training.gan import reinitialise_discriminator

    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, num_classes=4))
    with torch.no_grad():  # as after training: weights far from their initialisation
        for parameter in model.discriminator.parameters():
            parameter.mul_(3).add_(0.1)
    reinitialise_discriminator(model, seed=0)
    norms = _effective_spectral_norms(model.discriminator)
    assert all(abs(norm - 1) < 0.05 for norm in norms.values()), norms
    # Loading keeps the saved estimates (no power iterations on load), so outputs survive the round trip.
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_pipeline_follows_diffusers_conventions(tmp_path):
    from diffusers import DiffusionPipeline

    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, num_classes=5)).eval()
    GANPipeline(generator_model=model.generator).save_pretrained(tmp_path)
    pipe = DiffusionPipeline.from_pretrained(tmp_path)  # after `import hf_genxfer`, diffusers' own loader works
    assert isinstance(pipe, GANPipeline)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        class_labels=[3, 1], num_images_per_prompt=3, generator=torch.Generator().manual_seed(0), output_type="pt"
    )
    assert out.images.shape == (6, 1, 16, 16) and out.class_labels.tolist() == [3, 3, 3, 1, 1, 1]
    random_labels = pipe(batch_size=2, num_images_per_prompt=2, output_type="pt").class_labels.tolist()
    assert random_labels[0] == random_labels[1] and random_labels[2] == random_labels[3]
    with pytest.raises(ValueError, match="num_images_per_prompt must be a positive integer"):
        pipe(num_images_per_prompt=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        pipe(batch_size=0)


def test_bf16_model_samples_in_its_own_dtype(tmp_path):
    GANModel(GANConfig(**TINY, num_classes=4)).save_pretrained(tmp_path)
    model = AutoModel.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    latents = model.generator.sample_latents(3, generator=torch.Generator().manual_seed(0))
    assert latents.dtype == torch.bfloat16
    images = model(latents, class_labels=torch.tensor([0, 1, 2])).images
    assert images.dtype == torch.bfloat16 and images.shape == (3, 1, 16, 16)
    # The same numbers as float32 latents, rounded: the draw itself does not depend on the dtype.
    full = GANModel.from_pretrained(tmp_path).generator.sample_latents(3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(latents, full.to(torch.bfloat16), rtol=0, atol=0)


def _layer_outputs(generator, latents, labels) -> list[torch.Tensor]:
    """The output of every generator layer (after its modulation), in order."""
    outputs = []
    hooks = [
        block.register_forward_hook(lambda module, args, output: outputs.append(output)) for block in generator.blocks
    ]
    try:
        generator(latents, class_labels=labels)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def test_per_layer_conditioning_reaches_every_block():
    """With a style mapping the class modulates every block: changing only the class label changes each block's
    output beyond what its input change explains, and every modulation gets gradient."""
    torch.manual_seed(0)
    config = GANConfig(**{**TINY, "layers_per_block": 2}, num_classes=4, style_mapping_layers=2)
    generator = GANModel(config).generator.eval()
    assert [len(block.modulations) for block in generator.blocks] == [2] * len(generator.blocks)
    latents = torch.randn(3, 8)
    first, second = torch.zeros(3, dtype=torch.long), torch.full((3,), 2)
    # Same input to a block, different classes: the block's own output differs only through the modulation.
    hidden = generator.mapping_norm(
        generator.mapping_activation(
            generator.mapping(torch.cat([latents, generator.class_embedding(first)], dim=1)).reshape(3, -1, 4, 4)
        )
    )
    style = {
        int(c[0]): generator.style_mapping(torch.cat([_unit(latents), _unit(generator.class_embedding(c))], dim=1))
        for c in (first, second)
    }
    for block in generator.blocks:
        a, b = block(hidden, style[0]), block(hidden, style[2])
        assert (a - b).abs().mean() > 1e-3 * a.abs().mean()
        hidden = a
    # Every modulation and the style mapping take part in the loss.
    generator.train()
    generator(latents, class_labels=second).images.square().mean().backward()
    for name, parameter in generator.named_parameters():
        if "modulations" in name or "style_mapping" in name:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    # An input-conditioned generator has neither.
    plain = GANModel(GANConfig(**TINY, num_classes=4)).generator
    assert not any("modulations" in n or "style_mapping" in n for n, _ in plain.named_parameters())


def _unit(hidden):
    return hidden * torch.rsqrt(hidden.pow(2).mean(1, keepdim=True) + 1e-8)


def test_per_layer_conditioning_in_multitask_generators():
    torch.manual_seed(0)
    for fields in ({"shared_blocks": 1}, {}):
        config = GANConfig(**TINY, num_classes=3, task_names=["a", "b"], style_mapping_layers=1, **fields)
        model = GANModel(config).eval()
        images = model(torch.randn(4, 8), class_labels=torch.tensor([0, 1, 2, 0]), task=["a", "b", "a", "b"]).images
        assert images.shape == (4, 1, 16, 16)
        heads = getattr(model.generator, "task_heads", None)
        if heads is not None:  # the task heads' blocks are modulated too
            assert all(hasattr(block, "modulations") for head in heads.values() for block in head.blocks)


def test_per_layer_pipeline_round_trip(tmp_path):
    from diffusers import DiffusionPipeline

    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, num_classes=5, style_mapping_layers=2)).eval()
    GANPipeline(generator_model=model.generator).save_pretrained(tmp_path)
    loaded = DiffusionPipeline.from_pretrained(tmp_path)
    assert isinstance(loaded, GANPipeline)
    a = loaded(batch_size=4, class_labels=[0, 1, 2, 3], generator=torch.Generator().manual_seed(0), output_type="pt")
    b = GANPipeline(generator_model=model.generator)(
        batch_size=4, class_labels=[0, 1, 2, 3], generator=torch.Generator().manual_seed(0), output_type="pt"
    )
    torch.testing.assert_close(a.images, b.images, **AFTER_RELOAD)


def test_auxiliary_classifier_scores_classes_beside_realness(tmp_path):
    torch.manual_seed(0)
    model = GANModel(GANConfig(**TINY, num_classes=5, auxiliary_classifier=True)).eval()
    images = model(torch.randn(3, 8), class_labels=torch.tensor([0, 1, 4])).images
    scored = model.discriminator(images, class_labels=torch.tensor([0, 1, 4]))
    assert scored.logits.shape == (3,) and scored.class_logits.shape == (3, 5)
    assert (
        GANModel(GANConfig(**TINY, num_classes=5)).discriminator(images, torch.tensor([0, 1, 4])).class_logits is None
    )
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(
        loaded.discriminator(images, torch.tensor([0, 1, 4])).class_logits, scored.class_logits, **AFTER_RELOAD
    )
    with pytest.raises(ValueError, match="auxiliary_classifier needs a single-task class-conditional GAN"):
        GANConfig(**TINY, auxiliary_classifier=True)


def test_learned_latent_affine_starts_at_the_identity_and_round_trips(tmp_path):
    torch.manual_seed(0)
    plain = GANModel(GANConfig(**TINY, num_classes=3)).eval()
    plain.save_pretrained(tmp_path / "plain")
    # A source without the affine, loaded as a target with it: the new parameters start at the identity.
    target = GANModel.from_pretrained(tmp_path / "plain", learned_latent_affine=True).eval()
    latents, labels = torch.randn(2, 8), torch.tensor([0, 2])
    torch.testing.assert_close(target(latents, labels).images, plain(latents, labels).images, **AFTER_RELOAD)
    with torch.no_grad():
        target.generator.latent_shift.fill_(0.5)
    changed = target(latents, labels).images
    assert not torch.allclose(changed, plain(latents, labels).images)
    target.save_pretrained(tmp_path / "affine")
    loaded = AutoModel.from_pretrained(tmp_path / "affine").eval()
    torch.testing.assert_close(loaded(latents, labels).images, changed, **AFTER_RELOAD)


def test_minibatch_std_is_the_population_std_of_each_group():
    from hf_genxfer.models.gan.modeling_gan import _minibatch_std

    hidden = torch.randn(12, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    out = _minibatch_std(hidden)
    assert out.shape == (12, 6, 4, 4) and torch.equal(out[:, :5], hidden)
    groups = hidden.reshape(3, 4, 5, 4, 4)  # consecutive groups of 4
    expected = (groups.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3)).repeat_interleave(4)
    torch.testing.assert_close(out[:, 5, 0, 0], expected, rtol=1e-6, atol=1e-7)
