"""Transfer recipes end to end on tiny models: every strategy trains from a source folder and saves a usable run."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe  # tests/ is on sys.path (rootdir conftest)

from hf_genxfer.recipes import RecipeError, validate_recipe
from hf_genxfer.training.loop import train


@pytest.fixture(scope="module")
def gan_source(tmp_path_factory):
    raw = tiny_gan_recipe(tmp_path_factory.mktemp("gan_source") / "run", max_steps=2)
    raw["data"]["classes"] = [0, 1, 2, 3, 4]
    train(validate_recipe(raw))
    return raw["output_dir"]


@pytest.fixture(scope="module")
def seq2seq_source(tmp_path_factory):
    raw = tiny_seq2seq_recipe(tmp_path_factory.mktemp("s2s_source") / "run", max_steps=2)
    raw["data"]["tokenizer_languages"] = ["fr"]  # as the shipped English source covers its target languages
    train(validate_recipe(raw))
    return raw["output_dir"]


@pytest.fixture(scope="module")
def english_only_source(tmp_path_factory):
    """A source whose character tokenizer knows English only (no "q": French "quatre" needs a new vocabulary)."""
    raw = tiny_seq2seq_recipe(tmp_path_factory.mktemp("s2s_english") / "run", max_steps=2)
    train(validate_recipe(raw))
    return raw["output_dir"]


def _gan_target(tmp_path, source, transfer, name="target"):
    raw = tiny_gan_recipe(tmp_path / name, max_steps=2)
    raw["init_from"] = source
    raw["model"] = {}
    raw["data"].update(classes=[5, 6, 7, 8, 9], shots_per_class=3)
    raw["transfer"] = transfer
    return raw


GAN_STRATEGIES = {
    "full": {},
    "freezed1": {"freeze_discriminator_blocks": 1},
    "lora": {"lora": {"r": 2, "alpha": 4}},
    "full+l2sp": {"regularizer": "l2sp", "regularizer_weight": 0.1},
    "full+ewc": {"regularizer": "ewc", "regularizer_weight": 1.0, "fisher_batches": 2},
    "full+diffaugment": {"diffaugment": "color,translation,cutout"},
    "style1": {"freeze_generator_blocks": 1},
    "full+cdc": {"cdc_weight": 10.0, "cdc_batch_size": 4},
    "lora_class_embedding": {
        "strategy": "lora_class_embedding",
        "lora": {"r": 2, "alpha": 4, "modules_to_save": ["generator.class_embedding"]},
    },
    "lora_dora": {"strategy": "lora_dora", "lora": {"r": 2, "alpha": 4, "use_dora": True}},
}


@pytest.mark.parametrize("strategy", list(GAN_STRATEGIES))
def test_gan_strategies(tmp_path, gan_source, strategy):
    raw = _gan_target(tmp_path, gan_source, GAN_STRATEGIES[strategy])
    metrics = train(validate_recipe(raw))
    out = raw["output_dir"]
    assert metrics["step"] == 2 and metrics["fid"] > 0
    report = json.load(open(os.path.join(out, "transfer_report.json")))
    assert report["strategy"] == strategy and report["init_from"] == gan_source
    assert report["parameters"]["counts"]["copied"] > 0 and report["parameters"]["counts"]["initialised"] == 0
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["base_model"] == gan_source
    source, target = (
        load_file(os.path.join(gan_source, "model.safetensors")),
        load_file(os.path.join(out, "model.safetensors")),
    )
    if strategy == "freezed1":
        frozen = [k for k in source if k.startswith(("discriminator.from_image.", "discriminator.blocks.0."))]
        assert frozen and all(torch.equal(source[k], target[k]) for k in frozen if "original" in k or "bias" in k)
        assert not torch.equal(source["discriminator.head.bias"], target["discriminator.head.bias"])
    if strategy == "style1":  # content (embeddings, mapping, the 4x4 block) kept, the later blocks trained
        content = ("generator.class_embedding.", "generator.mapping.", "generator.blocks.0.")
        kept = [k for k in source if k.startswith(content)]
        assert kept and all(torch.equal(source[k], target[k]) for k in kept)
        assert not torch.equal(
            source["generator.blocks.1.convs.0.weight"], target["generator.blocks.1.convs.0.weight"]
        )
    if strategy.startswith("lora"):
        assert os.path.isfile(os.path.join(out, "adapter", "adapter_model.safetensors"))
        assert report["trainable_parameters"] < report["total_parameters"]
        adapter_config = json.load(open(os.path.join(out, "adapter", "adapter_config.json")))
        assert adapter_config["use_dora"] is (strategy == "lora_dora")
        saved = load_file(os.path.join(out, "adapter", "adapter_model.safetensors"))
        assert any("lora_magnitude_vector" in key for key in saved) is (strategy == "lora_dora")
        card = open(os.path.join(out, "adapter", "README.md"), encoding="utf-8").read()
        assert ("A PEFT DoRA (weight-decomposed LoRA) adapter" in card) is (strategy == "lora_dora")
        from peft import PeftModel

        from hf_genxfer import GANModel

        base = GANModel.from_pretrained(gan_source)
        adapted = PeftModel.from_pretrained(base, os.path.join(out, "adapter"))
        merged = GANModel.from_pretrained(out).eval()
        latents, labels = torch.randn(3, 16), torch.tensor([5, 6, 7])
        adapted.eval()
        torch.testing.assert_close(
            adapted.base_model.model.generator(latents, labels).images,
            merged(latents, labels).images,
            atol=1e-4,
            rtol=0,
        )


def test_loraplus_reaches_the_generator_optimizer(tmp_path, gan_source, monkeypatch):
    """`transfer.lora.loraplus_lr_ratio` in a recipe: the generator's optimizer trains its LoRA B matrices at the
    ratio times the learning rate (written as users write it) and its A matrices at the rate."""
    made = []

    class Recording(torch.optim.Adam):
        def __init__(self, params, *args, **kwargs):
            super().__init__(params, *args, **kwargs)
            made.append(self)

    monkeypatch.setattr(torch.optim, "Adam", Recording)
    raw = _gan_target(tmp_path, gan_source, {"lora": {"r": 2, "alpha": 4, "loraplus_lr_ratio": "8"}})
    raw["training"]["learning_rate"] = "2e-4"
    train(validate_recipe(raw))
    shapes = [
        sorted(
            (group["initial_lr"] if "initial_lr" in group else group["lr"], len(group["params"]))
            for group in optimizer.param_groups
        )
        for optimizer in made
    ]
    assert len(made) == 2  # the generator's and the discriminator's
    generator = next(s for s in shapes if len(s) == 2)
    (slow, slow_count), (fast, fast_count) = generator
    assert slow == pytest.approx(2e-4) and fast == pytest.approx(1.6e-3) and slow_count == fast_count > 0
    assert any(len(s) == 1 for s in shapes)  # the discriminator: one rate
    card = open(os.path.join(raw["output_dir"], "adapter", "README.md"), encoding="utf-8").read()
    assert "its B matrices trained at 8x the learning rate, LoRA+" in card

    raw["transfer"]["lora"]["loraplus_lr_ratio"] = 0
    with pytest.raises(RecipeError, match="transfer.lora.loraplus_lr_ratio must be greater than 0"):
        validate_recipe(raw)


def test_gan_transfer_to_another_architecture_reports_initialised_parts(tmp_path, gan_source):
    raw = _gan_target(tmp_path, gan_source, {"exclude": ["generator.to_image.*"]})
    raw["model"] = {"num_classes": 5}
    raw["data"]["classes"] = [0, 1, 2, 3, 4]
    train(validate_recipe(raw))
    report = json.load(open(os.path.join(raw["output_dir"], "transfer_report.json")))["parameters"]
    statuses = {entry["name"]: entry["status"] for entry in report["entries"]}
    assert statuses["generator.class_embedding.weight"] == "initialised"  # 10 classes in the source, 5 here
    assert statuses["generator.to_image.weight"] == "initialised"  # excluded by pattern
    assert statuses["generator.mapping.bias"] == "copied"


SEQ2SEQ_STRATEGIES = {
    "full": {},
    "frozen_encoder": {"freeze_encoder": True},
    "lora": {"lora": {"r": 2, "alpha": 4}},
    "full+l2sp": {"regularizer": "l2sp", "regularizer_weight": 0.1},
    "full+ewc": {"regularizer": "ewc", "fisher_batches": 2},
}


@pytest.mark.parametrize("strategy", list(SEQ2SEQ_STRATEGIES))
def test_seq2seq_strategies(tmp_path, seq2seq_source, strategy):
    raw = tiny_seq2seq_recipe(tmp_path / "target", max_steps=2)
    raw["init_from"] = seq2seq_source
    raw["model"] = {}
    raw["data"].update(language="fr", train_size=16)
    raw["transfer"] = SEQ2SEQ_STRATEGIES[strategy]
    metrics = train(validate_recipe(raw))
    out = raw["output_dir"]
    assert metrics["num_examples"] == 8
    report = json.load(open(os.path.join(out, "transfer_report.json")))
    assert report["strategy"] == strategy and report["parameters"]["counts"]["initialised"] == 0
    source = load_file(os.path.join(seq2seq_source, "model.safetensors"))
    target = load_file(os.path.join(out, "model.safetensors"))
    encoder = [k for k in source if ".encoder.layers." in k]
    if strategy == "frozen_encoder":
        assert all(torch.equal(source[k], target[k]) for k in encoder)
    elif strategy == "full":
        assert any(not torch.equal(source[k], target[k]) for k in encoder)
    if strategy == "lora":
        assert os.path.isfile(os.path.join(out, "adapter", "adapter_config.json"))
        assert report["trainable_fraction"] < 0.5


def test_seq2seq_vocabulary_change_copies_shared_rows(tmp_path, english_only_source):
    from transformers import AutoTokenizer

    seq2seq_source = english_only_source
    raw = tiny_seq2seq_recipe(tmp_path / "target", max_steps=1)
    raw["init_from"] = seq2seq_source
    raw["model"] = {}
    raw["data"].update(language="fr", train_size=16)
    raw["transfer"] = {"retrain_tokenizer": True}
    train(validate_recipe(raw))
    out = raw["output_dir"]
    report = json.load(open(os.path.join(out, "transfer_report.json")))
    assert report["strategy"] == "full+new_vocabulary"
    entries = {entry["name"]: entry for entry in report["parameters"]["entries"]}
    assert entries["backbone.model.shared.weight"]["status"] == "remapped"
    source_tokenizer = AutoTokenizer.from_pretrained(seq2seq_source)
    target_tokenizer = AutoTokenizer.from_pretrained(out)
    assert "q" in target_tokenizer.get_vocab() and "q" not in source_tokenizer.get_vocab()  # "quatre"
    # Rows of shared tokens keep the source values (1 step of training moves them only slightly).
    source = load_file(os.path.join(seq2seq_source, "model.safetensors"))["backbone.model.shared.weight"]
    target = load_file(os.path.join(out, "model.safetensors"))["backbone.model.shared.weight"]
    row = lambda tokenizer, token: tokenizer.get_vocab()[token]  # noqa: E731
    assert target.shape[0] == len(target_tokenizer)
    for token in ("u", "n", "7"):
        assert torch.allclose(target[row(target_tokenizer, token)], source[row(source_tokenizer, token)], atol=0.05)


def test_transfer_fields_need_a_source(tmp_path):
    raw = tiny_gan_recipe(tmp_path / "x")
    raw["transfer"] = {"lora": {"r": 2}}
    with pytest.raises(RecipeError, match="transfer.lora needs a source model"):
        validate_recipe(raw)
    raw = tiny_seq2seq_recipe(tmp_path / "y")
    raw["init_from"] = "somewhere"
    raw["transfer"] = {"freeze_discriminator_blocks": 1}
    with pytest.raises(RecipeError, match="does not apply to the seq2seq family"):
        validate_recipe(raw)


def test_gan_transfer_with_a_fresh_discriminator(tmp_path, gan_source):
    from hf_genxfer import GANModel
    from hf_genxfer.training.gan import reinitialise_discriminator

    raw = _gan_target(tmp_path, gan_source, {"fresh_discriminator": True, "regularizer": "ewc", "fisher_batches": 2})
    train(validate_recipe(raw))
    report = json.load(open(os.path.join(raw["output_dir"], "transfer_report.json")))
    assert report["strategy"] == "full+ewc+fresh_d"
    entries = {e["name"]: e for e in report["parameters"]["entries"]}
    assert entries["generator.to_image.weight"]["status"] == "copied"
    discriminator = [e for name, e in entries.items() if name.startswith("discriminator.")]
    assert discriminator and all(
        e["status"] == "initialised" and e["reason"] == "transfer.fresh_discriminator" for e in discriminator
    )
    # The re-initialisation is seeded and differs from the source discriminator.
    source = GANModel.from_pretrained(gan_source)
    a, b = GANModel.from_pretrained(gan_source), GANModel.from_pretrained(gan_source)
    reinitialise_discriminator(a, seed=0)
    reinitialise_discriminator(b, seed=0)
    name = "discriminator.head.parametrizations.weight.original"
    assert torch.equal(a.state_dict()[name], b.state_dict()[name])
    assert not torch.equal(a.state_dict()[name], source.state_dict()[name])
    assert torch.equal(a.state_dict()["generator.to_image.weight"], source.state_dict()["generator.to_image.weight"])
    with pytest.raises(RecipeError, match="do not combine"):
        validate_recipe(
            _gan_target(tmp_path, gan_source, {"fresh_discriminator": True, "freeze_discriminator_blocks": 1})
        )


@pytest.mark.parametrize("strategy", ["full", "lora", "frozen_embeddings"])
def test_extend_vocabulary_adds_the_missing_script_and_trains_it(tmp_path, english_only_source, strategy, monkeypatch):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from hf_genxfer.training import seq2seq
    from hf_genxfer.training.seq2seq import evaluate_saved_seq2seq

    initial = {}
    original = seq2seq.extend_vocabulary

    def extend_and_record(model, tokenizer, texts):  # the new rows as initialised, to see them train
        added = original(model, tokenizer, texts)
        initial["rows"] = model.get_input_embeddings().weight[[entry["id"] for entry in added]].detach().clone()
        return added

    monkeypatch.setattr(seq2seq, "extend_vocabulary", extend_and_record)
    raw = tiny_seq2seq_recipe(tmp_path / "target", max_steps=3)
    raw["init_from"] = english_only_source
    raw["model"] = {}
    raw["data"].update(language="ru", train_size=24)
    raw["transfer"] = {"extend_vocabulary": True}
    if strategy == "lora":
        raw["transfer"]["lora"] = {"r": 2, "alpha": 4}
    if strategy == "frozen_embeddings":
        raw["transfer"]["freeze_embeddings"] = True
    metrics = train(validate_recipe(raw))
    out = raw["output_dir"]
    report = json.load(open(os.path.join(out, "transfer_report.json")))
    assert report["strategy"].endswith("+extended_vocabulary")
    added = {entry["token"]: entry["id"] for entry in report["added_tokens"]}
    assert {"о", "д", "и"} <= set(added)  # Cyrillic letters of the Russian number words
    source_tokenizer = AutoTokenizer.from_pretrained(english_only_source)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == len(source_tokenizer) + len(added)
    assert tokenizer.unk_token_id not in tokenizer("сто два")["input_ids"]
    rows = AutoModelForSeq2SeqLM.from_pretrained(out).get_input_embeddings().weight
    assert rows.shape[0] == len(tokenizer)
    # The added rows trained, under every strategy (LoRA and frozen embeddings train them alone).
    assert not torch.allclose(rows[list(added.values())], initial["rows"])
    old = AutoModelForSeq2SeqLM.from_pretrained(english_only_source).get_input_embeddings().weight
    if strategy != "full":  # the source's rows stay exactly as they were
        assert torch.equal(rows[: old.shape[0]], old)
    # The saved (merged) folder scores exactly what the run scored with its trained model.
    assert evaluate_saved_seq2seq(out)["chrf"] == pytest.approx(metrics["chrf"])
    if strategy == "lora":
        adapter = json.load(open(os.path.join(out, "adapter", "adapter_config.json")))
        assert adapter["base_model_name_or_path"] is None  # the run's base has rows the source lacks


def test_train_added_rows_moves_those_rows_only():
    from hf_genxfer.recipes import TransferRecipe
    from hf_genxfer.training.strategy import parameter_groups
    from hf_genxfer.transfer.vocabulary import train_added_rows

    model = torch.nn.Module()
    model.embedding = torch.nn.Embedding(6, 3)
    model.get_input_embeddings = lambda: model.embedding
    model.get_output_embeddings = lambda: None
    model.embedding.weight.requires_grad_(False)
    before = model.embedding.weight.detach().clone()
    (weight,) = train_added_rows(model, [4, 5])
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.1, TransferRecipe()), lr=0.1, weight_decay=0.5)
    for _ in range(3):
        model.embedding(torch.tensor([0, 1, 4, 5])).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert torch.equal(weight[:4], before[:4]) and not torch.allclose(weight[4:], before[4:])


def test_latent_only_transfer_moves_the_latent_affine_and_nothing_else(tmp_path, gan_source):
    """The "latent" strategy: a target with `learned_latent_affine` starts at the identity (the source's outputs),
    and with every weight frozen only the latent's shift and scale train, at their own learning rate."""
    from hf_genxfer import GANModel

    frozen = ["generator.class_embedding.*", "generator.mapping.*", "generator.blocks.*", "generator.to_image.*"]
    raw = _gan_target(tmp_path, gan_source, {"freeze": frozen})
    raw["model"] = {"learned_latent_affine": True}
    raw["training"].update(max_steps=3, latent_learning_rate=0.05)
    train(validate_recipe(raw))
    source, target = GANModel.from_pretrained(gan_source).eval(), GANModel.from_pretrained(raw["output_dir"]).eval()
    assert target.config.learned_latent_affine and not source.config.learned_latent_affine
    moved = target.generator.latent_shift.detach()
    assert 0 < moved.abs().max() <= 3 * 0.05 + 1e-6  # Adam moves each entry by at most about the rate per step
    target_state, source_state = target.generator.state_dict(), source.generator.state_dict()
    for name, tensor in source_state.items():
        torch.testing.assert_close(target_state[name], tensor, rtol=0, atol=0)
    # The affine is all that differs: undoing it by hand gives the source's images.
    latents, labels = torch.randn(3, 16), torch.tensor([5, 6, 7])
    shifted = latents * target.generator.latent_log_scale.exp() + target.generator.latent_shift
    torch.testing.assert_close(
        target(latents, labels).images, source(shifted.detach(), labels).images, rtol=1e-5, atol=1e-6
    )


def test_latent_bias_recipe_trains_the_latent_and_the_modulation_biases_only(tmp_path):
    """The shipped latent+bias recipe's transfer section on a source with per-layer conditioning: the latent's
    affine and every modulation's bias move; the convolutions, modulation weights, embeddings, mappings and output
    layer keep the source's values bit for bit."""
    import yaml

    import hf_genxfer
    from hf_genxfer import GANModel

    recipes = os.path.join(os.path.dirname(hf_genxfer.__file__), "recipe_files")
    shipped = yaml.safe_load(open(os.path.join(recipes, "gan_glyphs_transfer_latent_bias.yaml")))
    source_raw = tiny_gan_recipe(tmp_path / "source", max_steps=2)
    source_raw["model"]["style_mapping_layers"] = 1
    train(validate_recipe(source_raw))
    raw = _gan_target(tmp_path, source_raw["output_dir"], shipped["transfer"])
    raw["model"] = dict(shipped["model"])
    rates = ("learning_rate", "discriminator_learning_rate", "latent_learning_rate")
    raw["training"].update({key: shipped["training"][key] for key in rates}, max_steps=3)
    train(validate_recipe(raw))
    source = GANModel.from_pretrained(source_raw["output_dir"]).generator.state_dict()
    target = GANModel.from_pretrained(raw["output_dir"]).generator.state_dict()
    moved = {name for name, tensor in source.items() if not torch.equal(tensor, target[name])}
    biases = {name for name in source if ".modulations." in name and name.endswith(".bias")}
    assert biases and moved == biases
    assert target["latent_shift"].abs().max() > 0
