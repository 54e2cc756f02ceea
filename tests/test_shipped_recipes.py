"""Every recipe in recipes/ runs end to end with tiny overrides, so a shipped recipe cannot rot."""

import glob
import os

import pytest
import yaml
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe

from hf_genxfer.recipes import apply_overrides, validate_recipe
from hf_genxfer.training.loop import train

RECIPES_DIR = os.path.join(os.path.dirname(__file__), "..", "recipes")
RECIPES = sorted(glob.glob(os.path.join(RECIPES_DIR, "*.yaml")))  # not accelerate/*
TINY_TRAINING = [
    "training.max_steps=2",
    "training.checkpoint_every=2",
    "training.report_to=none",
    "training.eval_every=0",
]
TINY_GAN = ["model.base_width=8", "model.max_width=16", "model.layers_per_block=1", "evaluation.num_samples=32"]
TINY_S2S_DATA = ["data.train_size=16", "data.validation_size=4", "data.test_size=4", "evaluation.max_new_tokens=8"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Tiny source runs standing in for outputs/gan_digits_source and outputs/s2s_num2words_en."""
    gan = tiny_gan_recipe(tmp_path_factory.mktemp("gan_source") / "run", max_steps=1)
    s2s = tiny_seq2seq_recipe(tmp_path_factory.mktemp("s2s_source") / "run", max_steps=1)
    s2s["data"]["tokenizer_languages"] = ["fr"]
    for raw in (gan, s2s):
        train(validate_recipe(raw))
    runs = {"gan": gan["output_dir"], "seq2seq": s2s["output_dir"]}
    # The few-shot font recipes start from the glyphs source: a tiny run of it (two fonts) stands in for its output.
    raw = yaml.safe_load(open(os.path.join(RECIPES_DIR, "gan_glyphs_source.yaml")))
    out = tmp_path_factory.mktemp("gan_glyphs_source") / "run"
    tiny = [f"output_dir={out}", *TINY_TRAINING, *TINY_GAN, "data.fonts=[cmr10,DejaVuSans]"]
    tiny.append("data.held_out_fraction=0.5")  # 62 characters held out of 248 images
    train(validate_recipe(apply_overrides(raw, tiny)))
    runs["gan_glyphs"] = str(out)
    # The add-a-task recipes start from the multi-task ones: tiny runs of those stand in for their outputs.
    for family, name in (("gan", "gan_digits_multitask"), ("seq2seq", "s2s_num2words_multitask")):
        raw = yaml.safe_load(open(os.path.join(RECIPES_DIR, f"{name}.yaml")))
        out = tmp_path_factory.mktemp(name) / "run"
        train(validate_recipe(apply_overrides(raw, [f"output_dir={out}", *TINY_TRAINING, *_tiny_model(raw)])))
        runs[f"{family}_multitask"] = str(out)
    return runs


def _tiny_model(raw: dict) -> list[str]:
    if raw["family"] == "gan":
        return TINY_GAN
    return [
        "model.backbone.d_model=16",
        "model.backbone.encoder_ffn_dim=32",
        "model.backbone.decoder_ffn_dim=32",
        *TINY_S2S_DATA,
    ]


@pytest.mark.parametrize("path", RECIPES, ids=[os.path.basename(p) for p in RECIPES])
def test_recipe_runs_with_tiny_overrides(path, sources, tmp_path):
    raw = yaml.safe_load(open(path))
    overrides = [f"output_dir={tmp_path / 'run'}", *TINY_TRAINING]
    if raw["init_from"] == "scratch":
        overrides += [o for o in _tiny_model(raw) if o not in TINY_S2S_DATA]
    else:
        multitask = raw["init_from"].endswith("_multitask")
        source = "gan_glyphs" if "gan_glyphs" in raw["init_from"] else raw["family"] + ("_multitask" * multitask)
        overrides.append(f"init_from={sources[source]}")
        if raw["family"] == "gan":
            overrides.append("evaluation.num_samples=32")
    if raw["family"] == "seq2seq":
        overrides += TINY_S2S_DATA
    metrics = train(validate_recipe(apply_overrides(raw, overrides)))
    assert metrics["step"] == 2
