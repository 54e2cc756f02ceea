"""Turning image sets into (N, D) feature matrices with a feature network: the first half of FID and KID."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_genxfer.evaluation.feature_nets import load_feature_network

# A registered name, an nn.Module with a `features` method (or whose forward returns (N, D)), or a function.
FeatureNetwork = str | nn.Module | Callable[[torch.Tensor], Any]

# Images that stray a little outside [-1, 1] through rounding are fine; [0, 1] or [0, 255] images are not.
RANGE_TOLERANCE = 1e-3


def as_image_tensor(images: Any, name: str) -> torch.Tensor:
    """A (N, C, H, W) tensor or numpy array in [-1, 1], or a list of (C, H, W) ones, as a floating-point tensor."""
    if isinstance(images, (list, tuple)):
        images = torch.stack(
            [image if torch.is_tensor(image) else torch.from_numpy(np.asarray(image)) for image in images]
        )
    elif not torch.is_tensor(images):
        images = torch.from_numpy(np.asarray(images))
    images = images.detach()
    if not images.is_floating_point():
        raise TypeError(f"{name} must be floating-point images in [-1, 1]; got dtype {images.dtype}.")
    if images.ndim != 4:
        raise ValueError(f"{name} must be images of shape (N, C, H, W); got shape {tuple(images.shape)}.")
    if len(images) and (images.min() < -1 - RANGE_TOLERANCE or images.max() > 1 + RANGE_TOLERANCE):
        raise ValueError(
            f"{name} must have values in [-1, 1]; got values in [{images.min().item():.3g}, {images.max().item():.3g}] "
            "(map [0, 1] images with x * 2 - 1, and clamp generator outputs to [-1, 1])."
        )
    return images


def feature_network_name(feature_network: FeatureNetwork) -> str:
    if isinstance(feature_network, str):
        return feature_network
    if isinstance(feature_network, nn.Module):
        return type(feature_network).__name__
    return getattr(feature_network, "__name__", type(feature_network).__name__)


def extract_features(images: Any, feature_network: FeatureNetwork = "digits", batch_size: int = 256) -> np.ndarray:
    """
    Embeds (N, C, H, W) images in [-1, 1] with `feature_network` (a registered name, an nn.Module with a `features`
    method or a function; see `image_set_metric.IMAGE_SET_INPUTS`) and returns (N, D) float64 features, the
    precision FID and KID are computed in.
    """
    images = as_image_tensor(images, "images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of images; got {batch_size}.")
    if isinstance(feature_network, str):
        feature_network = load_feature_network(feature_network)
    embed = getattr(feature_network, "features", feature_network)
    if not callable(embed):
        raise TypeError(
            "feature_network must be a registered name, an nn.Module or a function from images to (N, D) features; "
            f"got {type(feature_network).__name__}."
        )
    module = feature_network if isinstance(feature_network, nn.Module) else None
    device = next(module.parameters(), images).device if module is not None else images.device

    # A module passed in may be training (a discriminator, say): score it in eval mode and give it back as it was.
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    try:
        with torch.no_grad():
            batches = [embed(images[i : i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
    finally:
        if module is not None:
            module.train(was_training)
    features = [torch.as_tensor(batch).to("cpu", torch.float64) for batch in batches]
    if any(batch.ndim != 2 for batch in features):
        shape = next(tuple(batch.shape) for batch in features if batch.ndim != 2)
        raise ValueError(f"The feature network must return (N, D) features; it returned shape {shape}.")
    return torch.cat(features).numpy() if features else np.zeros((0, 0))


def as_feature_matrix(features: Any, name: str) -> np.ndarray:
    features = features.detach().cpu().numpy() if torch.is_tensor(features) else np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"{name} must be a (N, D) feature matrix; got shape {features.shape}.")
    return features.astype(np.float64)
