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

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_genxfer.evaluation.feature_nets import load_feature_network
from hf_genxfer.evaluation.image_features import as_image_tensor, feature_network_name


def classifier_accuracy(
    images: Any,
    labels: Any,
    feature_network: str | nn.Module = "glyphs",
    batch_size: int = 256,
    classes: Sequence[int] | None = None,
) -> dict:
    """
    The fraction of `images` ((N, C, H, W) in [-1, 1]; RGB and other sizes are fine for the shipped classifiers) whose
    top-1 class under `feature_network` (a registered name such as "glyphs" or "digits", or an nn.Module whose
    forward returns (N, num_classes) logits) equals the intended `labels` (N integers). With `classes`, the top-1 is
    taken among those class indices only (a choice between candidates, e.g. a few fonts), which must hold the labels.
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
    if classes is None:
        predicted = logits.argmax(dim=-1)
    else:
        candidates = torch.as_tensor(list(classes), dtype=torch.long)
        if len(candidates) == 0 or candidates.min() < 0 or candidates.max() >= logits.shape[1]:
            raise ValueError(f"classes must be class indices in [0, {logits.shape[1] - 1}]; got {list(classes)}.")
        if not torch.isin(labels, candidates).all():
            raise ValueError("classes must hold every label: the intended class has to be one of the candidates.")
        predicted = candidates[logits[:, candidates].argmax(dim=-1)]
    correct = (predicted == labels).sum().item()
    result = {"accuracy": correct / len(images), "num_images": len(images), "feature_network": name}
    if classes is not None:
        result["num_candidates"] = len(candidates)
    return result


def style_accuracy(
    images: Any, target_font: str, candidate_fonts: Sequence[str] | None = None, feature_network: Any = "fonts"
) -> dict:
    """
    The share of `images` (glyphs, (N, C, H, W) in [-1, 1]) that the font classifier (`"fonts"`, or a
    `FontsClassifier`) names `target_font`, choosing among `candidate_fonts` (by default every font it knows; the
    target is added when missing): few-shot font generation's style accuracy, beside the character classifier's
    content accuracy (`classifier_accuracy` with "glyphs").
    """
    network = load_feature_network(feature_network) if isinstance(feature_network, str) else feature_network
    fonts = list(getattr(network, "fonts", None) or [])
    if not fonts:
        raise TypeError("style_accuracy needs a font classifier: one with a `fonts` list naming its classes.")
    candidates = list(fonts if candidate_fonts is None else candidate_fonts)
    if target_font not in candidates:
        candidates.append(target_font)
    unknown = [font for font in candidates if font not in fonts]
    if unknown:
        raise ValueError(
            f"The font classifier does not know {', '.join(map(repr, unknown))}; it knows {', '.join(fonts)}."
        )
    images = as_image_tensor(images, "images")
    labels = [fonts.index(target_font)] * len(images)
    result = classifier_accuracy(images, labels, network, classes=[fonts.index(font) for font in candidates])
    return result | {"target_font": target_font, "candidate_fonts": candidates}
