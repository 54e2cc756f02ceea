import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_genxfer.data.glyphs import GLYPH_CHARACTERS, glyphs_dataset
from hf_genxfer.evaluation.accuracy import classifier_accuracy
from hf_genxfer.evaluation.feature_nets import WEIGHTS_DIR, GlyphsClassifier, load_feature_network

WEIGHTS = WEIGHTS_DIR / "glyphs_classifier.safetensors"
REPORT = WEIGHTS_DIR / "glyphs_classifier.json"
# Jitter seed for a fresh render: neither the training seed nor the held-out seed of the shipped report.
FRESH_SEED = 2024


@pytest.fixture(scope="module")
def fresh_glyphs():
    """Every font's 62 glyphs with fresh jitter, as (N, 1, 32, 32) images in [-1, 1] and labels."""
    dataset = glyphs_dataset(seed=FRESH_SEED)
    images = np.stack([np.asarray(image, dtype=np.float32) for image in dataset["image"]]) / 127.5 - 1.0
    return torch.from_numpy(images).unsqueeze(1), np.asarray(dataset["label"])


@pytest.fixture(scope="module")
def glyphs_network():
    return load_feature_network("glyphs")


def test_loaded_network_is_frozen_in_eval_mode_and_deterministic(glyphs_network, fresh_glyphs):
    assert isinstance(glyphs_network, GlyphsClassifier)
    assert not glyphs_network.training
    assert not any(parameter.requires_grad for parameter in glyphs_network.parameters())
    images = fresh_glyphs[0][:64]
    first, second = glyphs_network.features(images), glyphs_network.features(images)
    assert first.shape == (64, 128)
    assert torch.equal(first, second)
    assert glyphs_network(images).shape == (64, 62)


def test_shipped_weights_are_small_and_match_their_report():
    assert WEIGHTS.stat().st_size < 2_000_000
    report = json.loads(REPORT.read_text())
    assert report["weights_sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert report["dataset"] == "glyphs"
    assert FRESH_SEED not in (report["seed"], report["seed"] + report["held_out_seed_offset"])
    assert report["held_out_accuracy"] >= 0.9


def test_shipped_weights_reach_their_reported_accuracy_on_fresh_jitter(glyphs_network, fresh_glyphs):
    images, labels = fresh_glyphs
    report = json.loads(REPORT.read_text())
    with torch.no_grad():
        predictions = glyphs_network(images).argmax(dim=-1).numpy()
    assert (predictions == labels).mean() >= report["held_out_accuracy"] - 0.02
    characters = np.array(list(GLYPH_CHARACTERS.lower()))
    case_insensitive = (characters[predictions] == characters[labels]).mean()
    assert case_insensitive >= report["held_out_case_insensitive_accuracy"] - 0.02


def test_rgb_and_upscaled_glyphs_are_still_recognised(glyphs_network, fresh_glyphs):
    images, labels = fresh_glyphs
    images, labels = images[::5], labels[::5]
    reference = classifier_accuracy(images, labels, glyphs_network)["accuracy"]
    rgb = classifier_accuracy(images.repeat(1, 3, 1, 1), labels, glyphs_network)["accuracy"]
    assert rgb == pytest.approx(reference, abs=1e-6)
    upscaled = F.interpolate(images, size=64, mode="bilinear", align_corners=False)
    assert classifier_accuracy(upscaled, labels, glyphs_network)["accuracy"] >= reference - 0.05


def test_classifier_accuracy_on_glyphs_and_noise(fresh_glyphs):
    images, labels = fresh_glyphs
    result = classifier_accuracy(images, labels)  # "glyphs" by default
    assert result["feature_network"] == "glyphs" and result["num_images"] == len(labels)
    assert result["accuracy"] >= 0.9
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert classifier_accuracy(noise, labels)["accuracy"] <= 0.1


def test_classifier_accuracy_with_the_digits_network(digits, uniform_noise):
    images, labels = digits
    result = classifier_accuracy(images, labels, feature_network="digits", batch_size=500)
    assert result == {"accuracy": pytest.approx(result["accuracy"]), "num_images": 1797, "feature_network": "digits"}
    assert result["accuracy"] >= 0.95
    assert classifier_accuracy(uniform_noise, labels, feature_network="digits")["accuracy"] <= 0.3


def test_classifier_accuracy_scores_a_training_module_in_eval_mode_and_restores_it(digits):
    images, labels = digits[0][:200], digits[1][:200]
    network = load_feature_network("digits").train()
    first = classifier_accuracy(images, labels, network)
    assert network.training
    assert first == classifier_accuracy(images, labels, network)  # dropout off while scoring
    assert first["feature_network"] == "DigitsClassifier"


def test_classifier_accuracy_rejects_bad_inputs(digits):
    images, labels = digits[0][:10], digits[1][:10]
    with pytest.raises(ValueError, match="one label per image"):
        classifier_accuracy(images, labels[:5], "digits")
    with pytest.raises(ValueError, match=r"class indices in \[0, 9\]"):
        classifier_accuracy(images, labels + 10, "digits")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        classifier_accuracy((images + 1) * 127.5, labels, "digits")
