"""The shipped font (style) classifier and style accuracy: the style counterpart of the glyph (content) classifier."""

import hashlib
import json

import numpy as np
import pytest
import torch

from hf_genxfer.data.glyphs import available_glyph_fonts, glyphs_dataset
from hf_genxfer.evaluation import FontsClassifier, classifier_accuracy, load_feature_network, style_accuracy
from hf_genxfer.evaluation.feature_nets import WEIGHTS_DIR, shipped_font_names

WEIGHTS = WEIGHTS_DIR / "fonts_classifier.safetensors"
REPORT = WEIGHTS_DIR / "fonts_classifier.json"
FRESH_SEED = 2024  # neither the training nor the held-out jitter seed of the shipped report


@pytest.fixture(scope="module")
def fonts_network():
    return load_feature_network("fonts")


def font_glyphs(font: str, seed: int = FRESH_SEED) -> torch.Tensor:
    dataset = glyphs_dataset(fonts=[font], seed=seed)
    images = np.stack([np.asarray(image, dtype=np.float32) for image in dataset["image"]]) / 127.5 - 1.0
    return torch.from_numpy(images).unsqueeze(1)  # (62, 1, 32, 32)


def test_shipped_classifier_knows_every_bundled_font_and_matches_its_report(fonts_network):
    assert isinstance(fonts_network, FontsClassifier)
    assert not fonts_network.training and not any(p.requires_grad for p in fonts_network.parameters())
    assert fonts_network.fonts == shipped_font_names() == available_glyph_fonts()
    report = json.loads(REPORT.read_text())
    assert WEIGHTS.stat().st_size < 2_000_000
    assert report["weights_sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert report["dataset"] == "fonts" and report["held_out_accuracy"] >= 0.8
    assert FRESH_SEED not in (report["seed"], report["seed"] + report["held_out_seed_offset"])
    images = font_glyphs(report["fonts"][0])[:8]
    assert fonts_network.features(images).shape == (8, 128)
    assert fonts_network(images).shape == (8, len(report["fonts"]))


def test_fresh_renders_are_told_apart_by_font(fonts_network):
    report = json.loads(REPORT.read_text())
    fonts = fonts_network.fonts
    images = torch.cat([font_glyphs(font) for font in fonts])
    labels = np.repeat(np.arange(len(fonts)), 62)
    accuracy = classifier_accuracy(images, labels, fonts_network)["accuracy"]
    assert accuracy >= report["held_out_accuracy"] - 0.03


def test_style_accuracy_names_the_font_among_candidates(fonts_network):
    fonts = fonts_network.fonts
    target, other = "STIXGeneral-Regular", "DejaVuSans"
    assert {target, other} <= set(fonts)
    candidates = [font for font in fonts if font != target][:5]  # the target is added to them
    own = style_accuracy(font_glyphs(target), target, candidates, fonts_network)
    assert own["candidate_fonts"] == candidates + [target] and own["num_candidates"] == 6
    assert own["accuracy"] >= 0.8
    assert style_accuracy(font_glyphs(other), target, candidates, fonts_network)["accuracy"] <= 0.2
    # Fewer candidates can only make the target easier to pick; all fonts by default.
    everything = style_accuracy(font_glyphs(target), target, feature_network=fonts_network)
    assert everything["num_candidates"] == len(fonts) and everything["accuracy"] <= own["accuracy"]


def test_style_and_candidate_errors_name_the_problem(fonts_network):
    images = font_glyphs("DejaVuSans")[:4]
    with pytest.raises(ValueError, match="does not know 'NoSuchFont'"):
        style_accuracy(images, "NoSuchFont", feature_network=fonts_network)
    with pytest.raises(TypeError, match="needs a font classifier"):
        style_accuracy(images, "DejaVuSans", feature_network="glyphs")
    with pytest.raises(ValueError, match="must hold every label"):
        classifier_accuracy(images, [0] * 4, fonts_network, classes=[1, 2])
    with pytest.raises(ValueError, match=r"class indices in \[0, "):
        classifier_accuracy(images, [0] * 4, fonts_network, classes=[0, 999])


def test_a_font_classifier_needs_two_fonts():
    with pytest.raises(ValueError, match="at least two fonts"):
        FontsClassifier(["DejaVuSans"])


def test_fid_in_the_style_feature_space_separates_fonts(fonts_network):
    from hf_genxfer.evaluation import load_metric

    fid = load_metric("fid")
    target = font_glyphs("STIXGeneral-Regular", seed=7)
    same = fid.compute(predictions=font_glyphs("STIXGeneral-Regular"), references=target, feature_network="fonts")
    other = fid.compute(predictions=font_glyphs("DejaVuSans"), references=target, feature_network="fonts")
    assert same["feature_network"] == "fonts"
    assert same["fid"] < 0.5 * other["fid"]
