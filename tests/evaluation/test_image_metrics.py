import time

import numpy as np
import pytest
import torch
from torch import nn

from hf_genxfer.evaluation import extract_features, load_metric


@pytest.fixture(scope="module")
def fid():
    return load_metric("fid")


@pytest.fixture(scope="module")
def kid():
    return load_metric("kid", seed=0)


def random_halves(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    return order[: count // 2], order[count // 2 :]


def test_fid_of_a_set_with_itself_is_zero(fid, digits):
    images = digits[0]
    result = fid.compute(predictions=images, references=images)
    assert abs(result["fid"]) < 1e-3
    assert result == {"fid": result["fid"], "num_generated": 1797, "num_real": 1797, "feature_network": "digits"}


def test_fid_accepts_numpy_arrays(fid, digits):
    images = digits[0][:300]
    from_numpy = fid.compute(predictions=images.numpy(), references=digits[0][300:].numpy())["fid"]
    assert from_numpy == fid.compute(predictions=images, references=digits[0][300:])["fid"]


def test_fid_of_noise_is_far_above_that_of_two_halves_of_the_digits(fid, digits_features, uniform_noise):
    first, second = random_halves(len(digits_features), seed=0)
    halves = fid.compute(predictions_features=digits_features[first], references_features=digits_features[second])
    noise = fid.compute(predictions=uniform_noise, references_features=digits_features)
    assert 0 < halves["fid"] < 2
    assert noise["fid"] > 50 * halves["fid"]
    assert noise["num_generated"] == 1797 and noise["feature_network"] == "digits"


def test_fid_decreases_as_generated_images_approach_the_real_ones(fid, digits, digits_features):
    images = digits[0]
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=generator)
    scores = [
        fid.compute(predictions=(images + scale * noise).clamp(-1, 1), references_features=digits_features)["fid"]
        for scale in (1.0, 0.5, 0.25, 0.1)
    ]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] > 1e-3


def test_fid_on_batches_and_on_precomputed_features_equals_one_call(fid, digits, digits_features):
    images = digits[0]
    expected = fid.compute(predictions=images[:700], references=images[700:])["fid"]
    for start in range(0, 700, 300):  # generated and real batches of different sizes
        fid.add_batch(predictions=images[start : min(start + 300, 700)])
    fid.add_batch(references=images[700:1000])
    fid.add(reference=images[1000])
    assert fid.compute(references=images[1001:])["fid"] == pytest.approx(expected, rel=1e-9)
    precomputed = fid.compute(predictions_features=digits_features[:700], references=images[700:])
    assert precomputed["fid"] == pytest.approx(expected, rel=1e-9)
    assert precomputed["feature_network"] == "digits"
    both = fid.compute(predictions_features=digits_features[:700], references_features=digits_features[700:])
    assert both["fid"] == pytest.approx(expected, rel=1e-9) and both["feature_network"] == "precomputed"


def test_fid_of_all_digits_takes_at_most_a_couple_of_seconds(fid, digits):
    images = digits[0]
    start = time.perf_counter()
    fid.compute(predictions=images, references=images)
    assert time.perf_counter() - start < 5  # 0.2 s on 2 idle CPU cores, 1.5 s on 2 busy ones


class PixelFeatures(nn.Module):
    """A custom feature network: the raw pixels, recording the mode it was called in."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.modes = []

    def features(self, images):
        self.modes.append((self.training, torch.is_grad_enabled()))
        return images.flatten(1) * self.scale


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # corner pixels are constant: singular covariance
def test_custom_feature_network_module_runs_in_eval_mode_and_is_given_back_as_it_was(fid, digits):
    images = digits[0]
    network = PixelFeatures().train()
    result = fid.compute(predictions=images[:900], references=images[900:], feature_network=network, batch_size=500)
    assert result["feature_network"] == "PixelFeatures"
    assert set(network.modes) == {(False, False)} and len(network.modes) == 4  # 2 batches per set
    assert network.training
    # Pixels are a different feature space: the same images, another distance.
    assert result["fid"] != pytest.approx(fid.compute(predictions=images[:900], references=images[900:])["fid"])


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_a_plain_function_is_a_feature_network(fid, digits):
    def pixels(images):
        return images.flatten(1)

    images = digits[0]
    result = fid.compute(predictions=images, references=images, feature_network=pixels)
    assert abs(result["fid"]) < 1e-3 and result["feature_network"] == "pixels"
    assert np.array_equal(extract_features(images[:5], pixels), images[:5].flatten(1).double().numpy())


def test_kid_of_disjoint_random_halves_is_centred_on_zero(kid, digits_features):
    # Each half has 898 or 899 images, so every subset (clamped to 898) is a whole half: 2 subsets suffice.
    scores = []
    for seed in range(8):
        first, second = random_halves(len(digits_features), seed)
        result = kid.compute(
            predictions_features=digits_features[first], references_features=digits_features[second], num_subsets=2
        )
        scores.append(result["kid"])
    assert max(abs(score) for score in scores) < 0.03
    assert min(scores) < 0 < max(scores)  # unbiased: no floor at zero
    assert abs(np.mean(scores)) < 0.01


def test_kid_of_noise_is_large(kid, digits, uniform_noise, digits_features):
    result = kid.compute(
        predictions=uniform_noise, references_features=digits_features, num_subsets=5, subset_size=500
    )
    assert result["kid"] > 5
    assert result["kid_std"] > 0
    assert result["num_generated"] == result["num_real"] == 1797 and result["feature_network"] == "digits"


def test_kid_is_reproducible_and_clamps_the_subset_size(kid, digits_features):
    def run():
        return kid.compute(
            predictions_features=digits_features[:40], references_features=digits_features[40:], num_subsets=10
        )

    first = run()
    assert first == run()
    assert first["num_generated"] == 40


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"predictions": torch.zeros(4, 1, 8, 8) + 16, "references": torch.zeros(4, 1, 8, 8)}, r"\[-1, 1\]"),
        ({"predictions": torch.zeros(4, 8, 8), "references": torch.zeros(4, 1, 8, 8)}, r"\(N, C, H, W\)"),
        ({"predictions": torch.zeros(1, 1, 8, 8), "references": torch.zeros(4, 1, 8, 8)}, "at least 2 generated"),
        ({"references": torch.zeros(4, 1, 8, 8)}, "needs predictions images"),
        (
            {"predictions": torch.zeros(4, 1, 8, 8), "predictions_features": np.zeros((4, 64))},
            "either predictions images or predictions_features",
        ),
    ],
)
def test_fid_rejects_bad_inputs_with_a_clear_message(fid, inputs, message):
    with pytest.raises(ValueError, match=message):
        fid.compute(**inputs)


def test_image_metrics_refuse_several_processes(tmp_path):
    with pytest.raises(ValueError, match="gather_for_metrics"):
        load_metric("fid", num_process=2, process_id=0, cache_dir=str(tmp_path))
