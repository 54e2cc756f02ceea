"""LoRA through PEFT on the GAN generator and Seq2Seq backbones: targets, training, save/load, switching, merging."""

import pytest
import torch
from peft import LoraConfig, PeftModel, PeftModelForSeq2SeqLM, get_peft_model
from safetensors.torch import load_file

from hf_genxfer.transfer import (
    apply_lora,
    count_parameters,
    find_lora_targets,
    load_lora,
    lora_config_for,
    trainable_fraction,
)

LABELS = torch.tensor([0, 1, 2, 0])


def latents(seed=0):
    return torch.randn(4, 8, generator=torch.Generator().manual_seed(seed))


def randomise_adapter(model, adapter_name):
    """LoRA starts as a no-op (B = 0): give the adapter random weights so that it changes outputs."""
    generator = torch.Generator().manual_seed(len(adapter_name))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if f".{adapter_name}" in name and "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def test_gan_targets_are_the_generator_layers(gan_factory):
    model = gan_factory(num_classes=3)
    names, skipped = find_lora_targets(model)
    assert names == [
        "generator.class_embedding",
        "generator.mapping",
        "generator.blocks.0.convs.0",
        "generator.blocks.1.convs.0",
        "generator.to_image",
    ]
    assert skipped == {}
    for target in ("discriminator", "both"):
        with pytest.raises(ValueError, match="LoRA cannot adapt any layer of the discriminator: spectral-normed"):
            find_lora_targets(model, target)
    with pytest.raises(ValueError, match="`target` for a GANModel must be one of generator, discriminator, both"):
        find_lora_targets(model, "backbone")
    config = lora_config_for(model, r=4, alpha=8, modules=["generator.blocks.*"])
    assert sorted(config.target_modules) == ["generator.blocks.0.convs.0", "generator.blocks.1.convs.0"]
    assert config.task_type is None and config.r == 4 and config.lora_alpha == 8


def test_peft_merge_on_a_spectral_normed_layer_is_silently_lost(gan_factory):
    """Why the discriminator is never targeted: PEFT wraps the layer, but merging writes into the weight that
    spectral norm recomputes from `parametrizations.weight.original`, so the merged model forgets the adapter."""
    model = gan_factory().eval()
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    base = model.discriminator(images).logits
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["discriminator.head"], init_lora_weights=False))
    adapted = model.discriminator(images).logits
    assert not torch.allclose(adapted, base)
    merged = peft_model.merge_and_unload()
    torch.testing.assert_close(merged.discriminator(images).logits, base)  # the adapter is gone


def test_generator_lora_trains_only_adapters_and_keeps_the_discriminator_trainable(gan_factory):
    model = gan_factory(num_classes=3)
    peft_model = apply_lora(model, lora_config_for(model, r=2))
    assert peft_model.base_model.model is model  # injected in place: the loop keeps using model.generator
    generator, discriminator = model.generator, model.discriminator
    assert all(p.requires_grad == ("lora_" in n) for n, p in generator.named_parameters())
    assert all(p.requires_grad for p in discriminator.parameters())
    before = {name: p.detach().clone() for name, p in peft_model.named_parameters()}

    # The loop's two optimizers, on the modules it prepares separately.
    generator_optimizer = torch.optim.Adam([p for p in generator.parameters() if p.requires_grad], lr=0.05)
    discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=0.05)
    for step in range(3):
        fake = generator(latents(step), class_labels=LABELS).images
        # (1) discriminator step
        d_loss = discriminator(fake.detach(), class_labels=LABELS).logits.pow(2).mean()
        d_loss.backward()
        discriminator_optimizer.step()
        discriminator_optimizer.zero_grad()
        # (2) generator step
        g_loss = -discriminator(fake, class_labels=LABELS).logits.mean()
        g_loss.backward()
        generator_optimizer.step()
        generator_optimizer.zero_grad()
        discriminator.zero_grad()

    for name, parameter in peft_model.named_parameters():
        changed = not torch.equal(parameter, before[name])
        if ".generator." in name:
            assert changed == ("lora_" in name), name  # base generator weights bitwise equal
        else:
            assert changed, name  # the discriminator trained
    lora_size = sum(p.numel() for n, p in generator.named_parameters() if "lora_" in n)
    generator_size = sum(p.numel() for p in generator.parameters())
    assert trainable_fraction(generator) == pytest.approx(lora_size / generator_size)
    trainable, total = count_parameters(peft_model)
    assert trainable_fraction(peft_model) == pytest.approx(trainable / total)


def test_gan_adapter_round_trip_switching_and_merging(tmp_path, gan_factory):
    model = gan_factory(num_classes=3).eval()
    peft_model = apply_lora(model, lora_config_for(model, r=2), adapter_name="letters")
    randomise_adapter(peft_model, "letters")
    letters = peft_model(latents(), class_labels=LABELS).images
    peft_model.save_pretrained(tmp_path)  # PEFT writes an adapter not named "default" to its own subfolder
    assert (tmp_path / "letters" / "adapter_config.json").is_file()
    saved = load_file(tmp_path / "letters" / "adapter_model.safetensors")
    assert saved and all("lora_" in key for key in saved)  # adapter-only

    loaded = PeftModel.from_pretrained(gan_factory(num_classes=3).eval(), tmp_path / "letters", adapter_name="letters")
    torch.testing.assert_close(loaded(latents(), class_labels=LABELS).images, letters, rtol=0, atol=0)

    # A second domain on the same base: switching changes the outputs, switching back restores them.
    peft_model = apply_lora(peft_model, lora_config_for(peft_model, r=2), adapter_name="digits")
    assert peft_model.active_adapter == "digits"
    randomise_adapter(peft_model, "digits")
    digits = peft_model(latents(), class_labels=LABELS).images
    assert not torch.allclose(digits, letters, atol=1e-3)
    peft_model.set_adapter("letters")
    torch.testing.assert_close(peft_model(latents(), class_labels=LABELS).images, letters, rtol=0, atol=0)
    peft_model.save_pretrained(tmp_path / "both")
    assert (tmp_path / "both" / "letters").is_dir() and (tmp_path / "both" / "digits").is_dir()

    # Both adapters loaded onto a fresh base and switched by name.
    base = gan_factory(num_classes=3).eval()
    served = load_lora(base, tmp_path / "both" / "digits", adapter_name="digits")
    served = load_lora(served, tmp_path / "letters", adapter_name="letters")
    served.set_adapter("digits")
    torch.testing.assert_close(served(latents(), class_labels=LABELS).images, digits, rtol=0, atol=0)
    served.set_adapter("letters")
    torch.testing.assert_close(served(latents(), class_labels=LABELS).images, letters, rtol=0, atol=0)

    merged = served.merge_and_unload()
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(merged(latents(), class_labels=LABELS).images, letters, rtol=1e-4, atol=1e-4)


def test_load_lora_for_training_keeps_the_discriminator_trainable(tmp_path, gan_factory):
    model = gan_factory()
    apply_lora(model, lora_config_for(model, r=2)).save_pretrained(tmp_path)
    resumed = load_lora(gan_factory(), tmp_path, is_trainable=True)
    assert all(p.requires_grad for p in resumed.base_model.model.discriminator.parameters())
    assert all(p.requires_grad == ("lora_" in n) for n, p in resumed.base_model.model.generator.named_parameters())


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_seq2seq_lora_train_save_load_generate_merge(tmp_path, seq2seq_factory, batch_factory, kind):
    model = seq2seq_factory(kind)
    names, skipped = find_lora_targets(model)
    assert names and all(name.startswith("backbone.") for name in names)
    assert any("lm_head" in name for name in skipped) and "tied" in skipped[next(n for n in skipped if "lm_head" in n)]
    config = lora_config_for(model, r=2)
    assert config.task_type == "SEQ_2_SEQ_LM"
    peft_model = apply_lora(model, config)
    assert isinstance(peft_model, PeftModelForSeq2SeqLM)
    assert 0 < trainable_fraction(peft_model) < 0.5

    batch = batch_factory()
    before = {name: p.detach().clone() for name, p in peft_model.named_parameters()}
    optimizer = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(3):
        peft_model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, parameter in peft_model.named_parameters():
        assert (not torch.equal(parameter, before[name])) == ("lora_" in name), name

    peft_model.eval()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    logits = peft_model(**batch).logits
    generated = peft_model.generate(**inputs, max_new_tokens=4, do_sample=False)
    peft_model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(seq2seq_factory(kind), tmp_path).eval()
    assert isinstance(loaded, PeftModelForSeq2SeqLM)
    torch.testing.assert_close(loaded(**batch).logits, logits)  # float32 tolerance: T5 differs in the last bit
    assert torch.equal(loaded.generate(**inputs, max_new_tokens=4, do_sample=False), generated)

    merged = loaded.merge_and_unload()
    torch.testing.assert_close(merged(**batch).logits, logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(merged.generate(**inputs, max_new_tokens=4, do_sample=False), generated)
    assert merged.get_output_embeddings().weight is merged.get_input_embeddings().weight  # still tied


def test_seq2seq_encoder_only_adapters(seq2seq_factory):
    model = seq2seq_factory("t5")
    names, _ = find_lora_targets(model, "encoder", modules=["*.q", "*.v"])
    assert names and all(name.startswith("backbone.encoder.") and name[-2:] in (".q", ".v") for name in names)
    with pytest.raises(ValueError, match="'\\*.q_proj' match no layer"):
        find_lora_targets(model, "encoder", modules=["*.q", "*.q_proj"])


def test_modules_to_save_train_the_class_embedding_in_full(tmp_path, gan_factory):
    """New classes need embedding rows of their own: `modules_to_save` trains the class embedding in full next to the
    LoRA layers, saves it in the adapter, and PEFT's loader and the merged copy reproduce the outputs."""
    from hf_genxfer.transfer.adapters import merged_copy

    model = gan_factory(num_classes=3, style_mapping_layers=1).eval()
    config = lora_config_for(model, r=2, modules_to_save=["generator.class_embedding"])
    assert "generator.class_embedding" not in config.target_modules
    assert "generator.style_mapping.0" in config.target_modules
    assert "generator.blocks.0.modulations.0" in config.target_modules
    assert list(config.modules_to_save) == ["generator.class_embedding"]
    peft_model = apply_lora(model, config)
    trained = {n for n, p in peft_model.named_parameters() if p.requires_grad and "discriminator" not in n}
    assert "base_model.model.generator.class_embedding.modules_to_save.default.weight" in trained
    assert all("lora_" in n or "modules_to_save" in n for n in trained)
    randomise_adapter(peft_model, "default")
    with torch.no_grad():
        peft_model.base_model.model.generator.class_embedding.modules_to_save["default"].weight.add_(1.0)
    adapted = peft_model(latents(), class_labels=LABELS).images
    peft_model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert any("class_embedding" in key for key in saved)

    loaded = PeftModel.from_pretrained(gan_factory(num_classes=3, style_mapping_layers=1).eval(), tmp_path)
    torch.testing.assert_close(loaded(latents(), class_labels=LABELS).images, adapted, rtol=1e-5, atol=1e-6)
    merged = merged_copy(peft_model).eval()
    assert not any("lora_" in n or "modules_to_save" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(latents(), class_labels=LABELS).images, adapted, rtol=1e-4, atol=1e-5)

    with pytest.raises(ValueError, match="`modules_to_save` pattern\\(s\\) 'generator.nothing' match no module"):
        lora_config_for(gan_factory(num_classes=3), modules_to_save=["generator.nothing"])


def _rates(module, groups):
    names = {id(p): name for name, p in module.named_parameters()}
    rates = {}
    for group in groups:
        for parameter in group["params"]:
            assert names[id(parameter)] not in rates  # each parameter in one group
            rates[names[id(parameter)]] = group["lr"]
    return rates


def test_loraplus_trains_every_b_matrix_at_the_ratio_and_the_rest_at_the_rate(gan_factory):
    """LoRA+ on a GAN generator with DoRA: the B matrices of its convolutions, linear layers and class embedding at
    16x the rate; A matrices and DoRA magnitudes (vectors of every layer type) at the rate."""
    from hf_genxfer.recipes import LoraRecipe, TransferRecipe
    from hf_genxfer.training.strategy import apply_adapters, parameter_groups

    gan = gan_factory(num_classes=3)
    transfer = TransferRecipe(lora=LoraRecipe(r=2, alpha=4, use_dora=True, loraplus_lr_ratio=16.0))
    apply_adapters(gan, transfer, "generator")
    rates = _rates(gan.generator, parameter_groups(gan.generator, 1e-3, transfer))
    assert set(rates) == {name for name, p in gan.generator.named_parameters() if p.requires_grad}
    fast = {name for name in rates if ".lora_B." in name or ".lora_embedding_B." in name}
    for layer in ("class_embedding", "mapping", "blocks.0.convs.0", "to_image"):
        assert any(name.startswith(layer + ".") for name in fast), layer
    assert any("lora_magnitude_vector" in name for name in set(rates) - fast)
    assert all(rates[name] == pytest.approx(16e-3) for name in fast)
    assert all(rates[name] == pytest.approx(1e-3) for name in set(rates) - fast)

    plain = TransferRecipe(lora=LoraRecipe(r=2, alpha=4, use_dora=True))
    assert len(parameter_groups(gan.generator, 1e-3, plain)) == 1


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_loraplus_multiplies_layerwise_rates_of_b_matrices_only(seq2seq_factory, kind):
    """With layer-wise rate decay each B matrix gets the ratio times its own layer's rate."""
    from hf_genxfer.recipes import LoraRecipe, TransferRecipe
    from hf_genxfer.training.strategy import apply_adapters, parameter_groups

    model = seq2seq_factory(kind)
    transfer = TransferRecipe(lora=LoraRecipe(r=2, alpha=4), layerwise_lr_decay=0.5)
    apply_adapters(model, transfer, "backbone")
    base = _rates(model, parameter_groups(model, 1e-3, transfer))
    transfer.lora.loraplus_lr_ratio = 4.0
    plus = _rates(model, parameter_groups(model, 1e-3, transfer))
    assert set(plus) == set(base) and len(set(base.values())) > 1
    fast = [name for name in base if ".lora_B." in name or ".lora_embedding_B." in name]
    assert fast and len(fast) == len([name for name in base if ".lora_A." in name or ".lora_embedding_A." in name])
    for name in base:
        assert plus[name] == pytest.approx(base[name] * (4.0 if name in fast else 1.0)), name
