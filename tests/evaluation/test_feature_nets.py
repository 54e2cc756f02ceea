import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from hf_genxfer.evaluation import feature_nets
from hf_genxfer.evaluation.feature_nets import (
    WEIGHTS_DIR,
    DigitsClassifier,
    load_feature_network,
    register_feature_network,
)

WEIGHTS = WEIGHTS_DIR / "digits_classifier.safetensors"
REPORT = WEIGHTS_DIR / "digits_classifier.json"
TRAINING_SCRIPT = Path(__file__).parents[2] / "scripts" / "train_feature_classifier.py"


def test_loaded_network_is_frozen_in_eval_mode_and_deterministic(digits):
    network = load_feature_network("digits")
    assert isinstance(network, DigitsClassifier)
    assert not network.training
    assert not any(parameter.requires_grad for parameter in network.parameters())
    images = digits[0][:100]
    first, second = network.features(images), network.features(images)
    assert first.shape == (100, 64)
    assert torch.equal(first, second)
    assert network(images).shape == (100, 10)


def test_shipped_weights_are_small_and_match_their_report():
    assert WEIGHTS.stat().st_size < 1_000_000
    report = json.loads(REPORT.read_text())
    assert report["weights_sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert {"held_out_accuracy", "seed", "date", "test_size"} <= report.keys()


def test_shipped_weights_reach_97_percent_on_the_held_out_split(digits):
    images, labels = digits
    report = json.loads(REPORT.read_text())
    # The split of scripts/train_feature_classifier.py, rebuilt from its seed: these images were never trained on.
    _, held_out = train_test_split(
        np.arange(len(labels)), test_size=report["test_size"], random_state=report["seed"], stratify=labels
    )
    assert len(held_out) == report["num_held_out"]
    with torch.no_grad():
        predictions = load_feature_network()(images[held_out]).argmax(dim=-1).numpy()
    accuracy = (predictions == labels[held_out]).mean()
    assert accuracy >= 0.97
    assert accuracy == pytest.approx(report["held_out_accuracy"], abs=1e-6)


def test_rgb_and_upscaled_images_get_the_features_of_the_grey_8x8_ones(digits):
    network = load_feature_network()
    images = digits[0][:50]
    reference = network.features(images)
    assert torch.allclose(network.features(images.repeat(1, 3, 1, 1)), reference, atol=1e-5)
    for size in (16, 32):
        upscaled = F.interpolate(images, size=size, mode="nearest")
        assert torch.allclose(network.features(upscaled), reference, atol=1e-4)
    assert network.features(torch.zeros(2, 1, 28, 20)).shape == (2, 64)  # any size


def test_other_channel_counts_are_rejected():
    with pytest.raises(ValueError, match="RGB"):
        load_feature_network().features(torch.zeros(2, 4, 8, 8))


def test_registry_loads_registered_networks_frozen_and_names_the_valid_ones(monkeypatch):
    monkeypatch.setattr(feature_nets, "_FEATURE_NETWORKS", dict(feature_nets._FEATURE_NETWORKS))
    register_feature_network("tiny", lambda: torch.nn.Linear(64, 8))
    network = load_feature_network("tiny")
    assert not network.training and not network.weight.requires_grad
    with pytest.raises(ValueError, match="already registered"):
        register_feature_network("tiny", lambda: torch.nn.Linear(64, 8))
    with pytest.raises(ValueError, match="registered ones are: digits, fonts, glyphs, tiny"):
        load_feature_network("nonexistent")


def test_training_script_is_deterministic(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("train_feature_classifier", TRAINING_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # dataclasses look their module up there
    spec.loader.exec_module(script)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        for run in ("a", "b"):
            script.main(["--dataset", "digits", "--epochs", "1", "--output_dir", str(tmp_path / run)])
    finally:  # the script sets these for the whole process
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    first, second = (tmp_path / run / "digits_classifier.safetensors" for run in ("a", "b"))
    assert first.read_bytes() == second.read_bytes()
    report = json.loads((tmp_path / "a" / "digits_classifier.json").read_text())
    assert report["num_train"] + report["num_held_out"] == 1797
