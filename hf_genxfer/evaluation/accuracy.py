"""Class accuracy of generated images: how often a shipped classifier recognises the class they were asked to show.

For a class-conditional generator this complements FID and KID, which compare distributions: an image of the wrong
character can look like a fine glyph, but the classifier's top-1 then disagrees with the intended label.

Example:

```py
>>> from hf_genxfer.evaluation.accuracy import classifier_accuracy
>>> classifier_accuracy(generated_images, intended_labels, feature_network="glyphs")  # (N, C, H, W) in [-1, 1]
{'accuracy': 0.87, 'num_images': 520, 'feature_network': 'glyphs'}
```
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hf_genxfer.evaluation.feature_nets import load_feature_network
from hf_genxfer.evaluation.image_features import as_image_tensor, feature_network_name


def classifier_accuracy(
    images: Any, labels: Any, feature_network: str | nn.Module = "glyphs", batch_size: int = 256
) -> dict:
    """
    The fraction of `images` ((N, C, H, W) in [-1, 1]; RGB and other sizes are fine for the shipped classifiers) whose
    top-1 class under `feature_network` (a registered name such as "glyphs" or "digits", or an nn.Module whose
    forward returns (N, num_classes) logits) equals the intended `labels` (N integers).
    """
    images = as_image_tensor(images, "images")
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).flatten()
    if len(labels) != len(images):
        raise ValueError(f"Expected one label per image; got {len(labels)} labels for {len(images)} images.")
    if len(images) == 0:
        raise ValueError("classifier_accuracy needs at least one image.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of images; got {batch_size}.")
    name = feature_network_name(feature_network)
    network = load_feature_network(feature_network) if isinstance(feature_network, str) else feature_network
    if not isinstance(network, nn.Module):
        raise TypeError(f"feature_network must be a registered name or an nn.Module; got {type(network).__name__}.")

    # A module passed in may be training: score it in eval mode and give it back as it was.
    was_training = network.training
    device = next(network.parameters(), images).device
    network.eval()
    try:
        with torch.no_grad():
            logits = [network(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    finally:
        network.train(was_training)
    logits = torch.cat(logits)
    if logits.ndim != 2:
        raise ValueError(
            f"The classifier must return (N, num_classes) logits; it returned shape {tuple(logits.shape)}."
        )
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"labels must be class indices in [0, {logits.shape[1] - 1}] for {name!r}; "
            f"got values in [{labels.min().item()}, {labels.max().item()}]."
        )
    correct = (logits.argmax(dim=-1) == labels).sum().item()
    return {"accuracy": correct / len(images), "num_images": len(images), "feature_network": name}
