"""Freezing by pattern, FreezeD, Seq2Seq freezing helpers and layer-wise learning rates."""

import pytest
import torch

from hf_genxfer.transfer import (
    count_parameters,
    freeze,
    freeze_decoder_layers,
    freeze_discriminator_blocks,
    freeze_embeddings,
    freeze_encoder,
    freeze_generator_blocks,
    layerwise_learning_rates,
)


def train_a_few_steps(model, loss_fn, steps=3):
    """Adam on every parameter that still requires gradients, with a large learning rate so everything moves."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(steps):
        loss_fn(model).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def gan_loss(model):
    latents = torch.randn(4, model.config.latent_size, generator=torch.Generator().manual_seed(0))
    images = model(latents).images
    return images.pow(2).mean() + model.discriminator(images).logits.pow(2).mean()


def assert_only_frozen_unchanged(model, before, frozen):
    frozen = set(frozen)
    for name, parameter in model.named_parameters():
        if name in frozen:
            assert not parameter.requires_grad, name
            assert torch.equal(parameter, before[name]), f"{name} is frozen but changed"
        else:
            assert parameter.requires_grad, name
            assert not torch.equal(parameter, before[name]), f"{name} is trainable but did not change"


def parameters_snapshot(model):
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def test_frozen_weights_stay_bitwise_unchanged(gan_factory):
    model = gan_factory()
    frozen = freeze(model, ["generator.mapping.*", "discriminator.head.*"])
    assert frozen == [
        "generator.mapping.weight",
        "generator.mapping.bias",
        "discriminator.head.bias",
        "discriminator.head.parametrizations.weight.original",
    ]
    before = parameters_snapshot(model)
    train_a_few_steps(model, gan_loss)
    assert_only_frozen_unchanged(model, before, frozen)


def test_pattern_matching_nothing_is_an_error(gan_factory):
    with pytest.raises(ValueError, match=r"Pattern\(s\) 'generator\.nothing\.\*' match no parameter of GANModel"):
        freeze(gan_factory(), ["generator.mapping.*", "generator.nothing.*"])


def test_freezing_a_tied_alias_freezes_the_shared_tensor(seq2seq_factory):
    model = seq2seq_factory("bart")
    assert freeze(model, "backbone.lm_head.*") == ["backbone.model.shared.weight"]
    assert not model.get_input_embeddings().weight.requires_grad


@pytest.mark.parametrize("num_blocks", [0, 1, 2, 3])
def test_freeze_d_freezes_exactly_the_lowest_blocks(gan_factory, num_blocks):
    model = gan_factory(image_size=16, num_classes=3)  # discriminator: from_image, blocks.0-1, final_block, head
    frozen = freeze_discriminator_blocks(model, num_blocks)
    modules = ["from_image"] + [f"blocks.{i}" for i in range(min(num_blocks, 2))] + ["final_block"] * (num_blocks == 3)
    expected = [
        name
        for name, _ in model.named_parameters()
        if any(name.startswith(f"discriminator.{module}.") for module in modules)
    ]
    assert frozen == expected
    assert all(p.requires_grad for p in model.discriminator.head.parameters())
    assert all(p.requires_grad for p in model.discriminator.class_projection.parameters())

    before = parameters_snapshot(model)
    labels = torch.tensor([0, 1, 2, 0])

    def loss(model):
        latents = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
        images = model(latents, class_labels=labels).images
        return images.pow(2).mean() + model.discriminator(images, class_labels=labels).logits.pow(2).mean()

    train_a_few_steps(model, loss)
    assert_only_frozen_unchanged(model, before, frozen)


def test_freeze_d_on_a_bare_discriminator_and_range_errors(gan_factory):
    model = gan_factory(image_size=16)
    names = freeze_discriminator_blocks(model.discriminator, 1)
    assert names[0] == "from_image.bias" and all(not name.startswith("discriminator.") for name in names)
    for bad in (-1, 4, 1.5):
        with pytest.raises(ValueError, match="`num_blocks` must be an integer from 0 to 3"):
            freeze_discriminator_blocks(model, bad)
    with pytest.raises(TypeError, match="GANModel or GANDiscriminator"):
        freeze_discriminator_blocks(torch.nn.Linear(2, 2), 1)


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_freeze_encoder(seq2seq_factory, batch_factory, kind):
    model = seq2seq_factory(kind)
    frozen = freeze_encoder(model)
    encoder_ids = {id(p) for p in model.get_encoder().parameters()}
    assert {id(p) for name, p in model.named_parameters() if name in frozen} == encoder_ids
    assert not model.get_output_embeddings().weight.requires_grad  # tied to the encoder's embeddings

    before = parameters_snapshot(model)
    batch = batch_factory()
    train_a_few_steps(model, lambda m: m(**batch).loss)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]) == (name in frozen), name

    kept = seq2seq_factory(kind)
    frozen = freeze_encoder(kept, include_token_embeddings=False)
    assert kept.get_input_embeddings().weight.requires_grad
    assert len(frozen) == len(encoder_ids) - 1


def test_freeze_embeddings(seq2seq_factory):
    bart = seq2seq_factory("bart")
    assert freeze_embeddings(bart) == [
        "backbone.model.shared.weight",
        "backbone.model.encoder.embed_positions.weight",
        "backbone.model.decoder.embed_positions.weight",
    ]
    t5 = seq2seq_factory("t5")
    assert freeze_embeddings(t5) == ["backbone.shared.weight"]  # relative attention biases live in the layers
    with pytest.raises(TypeError, match="encoder-decoder"):
        freeze_embeddings(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("kind, layers", [("bart", "backbone.model.decoder.layers"), ("t5", "backbone.decoder.block")])
def test_freeze_decoder_layers(seq2seq_factory, batch_factory, kind, layers):
    model = seq2seq_factory(kind)
    frozen = freeze_decoder_layers(model, 1)
    assert frozen and all(name.startswith(f"{layers}.0.") for name in frozen)
    assert frozen == [name for name, _ in model.named_parameters() if name.startswith(f"{layers}.0.")]
    before = parameters_snapshot(model)
    batch = batch_factory()
    train_a_few_steps(model, lambda m: m(**batch).loss)
    for name in frozen:
        assert torch.equal(dict(model.named_parameters())[name], before[name])
    with pytest.raises(ValueError, match="`num_layers` must be an integer from 0 to 2"):
        freeze_decoder_layers(model, 3)


def test_layerwise_learning_rates_for_bart(seq2seq_factory):
    model = seq2seq_factory("bart")
    freeze(model, ["backbone.model.decoder.layers.1.fc1.*"])
    groups = layerwise_learning_rates(model, base_lr=1.0, decay=0.5)
    depth_of = {name: group["depth"] for group in groups for name in group["param_names"]}
    assert depth_of["backbone.model.decoder.layers.1.fc2.weight"] == 1
    assert depth_of["backbone.model.decoder.layers.0.fc1.weight"] == 2
    assert depth_of["backbone.model.encoder.layers.1.fc1.weight"] == 3
    assert depth_of["backbone.model.encoder.layers.0.fc1.weight"] == 4
    assert depth_of["backbone.model.shared.weight"] == 5
    assert depth_of["backbone.model.encoder.embed_positions.weight"] == 5
    assert depth_of["backbone.model.decoder.layernorm_embedding.weight"] == 5
    assert "backbone.model.decoder.layers.1.fc1.weight" not in depth_of  # frozen
    assert all(group["lr"] == 0.5 ** group["depth"] for group in groups)
    assert sum(len(group["params"]) for group in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(groups)
    assert [group["lr"] for group in optimizer.param_groups] == [group["lr"] for group in groups]


def test_layerwise_learning_rates_for_t5_with_weight_decay(seq2seq_factory):
    groups = layerwise_learning_rates(seq2seq_factory("t5"), base_lr=1e-3, decay=0.8, weight_decay=0.01)
    depth_of = {name: group["depth"] for group in groups for name in group["param_names"]}
    assert depth_of["backbone.decoder.final_layer_norm.weight"] == 0
    assert depth_of["backbone.decoder.block.1.layer.0.SelfAttention.q.weight"] == 1
    assert depth_of["backbone.encoder.final_layer_norm.weight"] == 3
    assert depth_of["backbone.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] == 4
    assert depth_of["backbone.shared.weight"] == 5
    for group in groups:
        assert group["weight_decay"] == (0.01 if all(p.dim() >= 2 for p in group["params"]) else 0.0)


def test_layerwise_learning_rates_for_a_gan(gan_factory):
    model = gan_factory(num_classes=3)
    generator = {n: g["depth"] for g in layerwise_learning_rates(model.generator, 1.0, 0.5) for n in g["param_names"]}
    assert generator["to_image.weight"] == 0
    assert generator["blocks.1.convs.0.weight"] == 1
    assert generator["blocks.0.convs.0.weight"] == 2
    assert generator["mapping.weight"] == generator["class_embedding.weight"] == 3
    groups = layerwise_learning_rates(model.discriminator, 1.0, 0.5)
    discriminator = {name: group["depth"] for group in groups for name in group["param_names"]}
    assert discriminator["head.bias"] == discriminator["class_projection.parametrizations.weight.original"] == 0
    assert discriminator["final_block.convs.0.bias"] == 1
    assert discriminator["blocks.0.convs.0.bias"] == 2
    assert discriminator["from_image.bias"] == 3
    with pytest.raises(TypeError, match="separate optimizers"):
        layerwise_learning_rates(model, 1.0, 0.5)
    with pytest.raises(ValueError, match="decay"):
        layerwise_learning_rates(model.generator, 1.0, 1.5)


def test_count_parameters(gan_factory, seq2seq_factory):
    model = gan_factory()
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == (total, total)
    frozen = freeze(model, "generator.*")
    generator_size = sum(p.numel() for p in model.generator.parameters())
    assert frozen and count_parameters(model) == (total - generator_size, total)
    bart = seq2seq_factory("bart")
    assert count_parameters(bart)[1] == sum(p.numel() for p in bart.parameters())  # tied embeddings counted once


@pytest.mark.parametrize("style_mapping_layers", [0, 2])
def test_freeze_generator_blocks_keeps_content_and_trains_style(gan_factory, style_mapping_layers):
    model = gan_factory(num_classes=3, style_mapping_layers=style_mapping_layers, image_size=16)
    frozen = freeze_generator_blocks(model, 1)
    content = ["generator.class_embedding.", "generator.mapping.", "generator.blocks.0."]
    if style_mapping_layers:
        content.append("generator.style_mapping.")
    assert sorted({name.rsplit(".", 2)[0] for name in frozen}) and all(
        any(name.startswith(prefix) for prefix in content) for name in frozen
    )
    for name, parameter in model.generator.named_parameters():
        expected_frozen = any(f"generator.{name}".startswith(prefix) for prefix in content)
        assert parameter.requires_grad is not expected_frozen, name
    assert all(p.requires_grad for p in model.discriminator.parameters())
    assert freeze_generator_blocks(gan_factory(), 0) == [
        "generator.mapping.weight",
        "generator.mapping.bias",
    ]
    with pytest.raises(ValueError, match="`num_blocks` must be an integer from 0 to 2"):
        freeze_generator_blocks(gan_factory(), 3)
