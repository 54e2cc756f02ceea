"""Digits in [-1, 1] and their features, computed once for all evaluation tests."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hf_genxfer.evaluation import extract_features


@pytest.fixture(scope="session")
def digits():
    """The 1,797 digits as (N, 1, 8, 8) float32 images in [-1, 1] and their labels."""
    data = load_digits()
    images = torch.from_numpy((data.images / 16 * 2 - 1).astype(np.float32)).unsqueeze(1)
    return images, data.target


@pytest.fixture(scope="session")
def digits_features(digits):
    return extract_features(digits[0])


@pytest.fixture(scope="session")
def uniform_noise(digits):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(digits[0].shape, generator=generator) * 2 - 1


@pytest.fixture(scope="session")
def noise_features(uniform_noise):
    return extract_features(uniform_noise)
