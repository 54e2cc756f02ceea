"""Diversity of generated images: the mean pairwise distance between images of the same class in a shipped feature
network's space, so that a few-shot generator that memorises its shots (one image per character) shows it.

Example:

```py
>>> from hf_genxfer.evaluation.diversity import within_class_diversity
>>> within_class_diversity(generated_images, intended_labels, feature_network="fonts")
{'diversity': 0.41, 'num_classes': 52, 'num_images': 208, 'feature_network': 'fonts'}
```
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hf_genxfer.evaluation.image_features import as_image_tensor, extract_features, feature_network_name


def mean_pairwise_distance(features: np.ndarray) -> float:
    """The mean Euclidean distance over all pairs of rows of a (N, D) matrix (N >= 2)."""
    if len(features) < 2:
        raise ValueError(f"A pairwise distance needs at least two images; got {len(features)}.")
    squares = (features**2).sum(axis=1)
    distances = np.sqrt(np.maximum(squares[:, None] + squares[None, :] - 2 * features @ features.T, 0.0))
    count = len(features)
    return float(distances[np.triu_indices(count, k=1)].mean())


def within_class_diversity(images: Any, labels: Any, feature_network: Any = "fonts") -> dict:
    """
    The mean, over classes with at least two of `images` ((N, C, H, W) in [-1, 1]), of the mean pairwise feature
    distance among that class's images: 0 when every image of a class is the same (memorised), larger when the
    samples vary. Compare with the same figure for real images (their own variation) or for the training shots.
    """
    images = as_image_tensor(images, "images")
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).flatten()
    if len(labels) != len(images):
        raise ValueError(f"Expected one label per image; got {len(labels)} labels for {len(images)} images.")
    features = extract_features(images, feature_network)
    per_class = [
        mean_pairwise_distance(features[(labels == label).numpy()])
        for label in torch.unique(labels).tolist()
        if int((labels == label).sum()) >= 2
    ]
    if not per_class:
        raise ValueError("within_class_diversity needs at least two images of some class.")
    return {
        "diversity": float(np.mean(per_class)),
        "num_classes": len(per_class),
        "num_images": len(images),
        "feature_network": feature_network_name(feature_network),
    }


def set_diversity(images: Any, feature_network: Any = "fonts") -> dict:
    """The mean pairwise feature distance among all of `images` (e.g. the few training shots, one per class)."""
    images = as_image_tensor(images, "images")
    features = extract_features(images, feature_network)
    return {
        "diversity": mean_pairwise_distance(features),
        "num_images": len(images),
        "feature_network": feature_network_name(feature_network),
    }


__all__ = ["mean_pairwise_distance", "set_diversity", "within_class_diversity"]
