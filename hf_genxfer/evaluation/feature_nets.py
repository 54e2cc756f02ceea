"""Small classifiers whose penultimate layer is the feature space of FID and KID, and a registry to load them by name.

Inception features mean little on 8x8 digits or 32x32 glyphs, so the image metrics embed images with a classifier
trained on the same kind of data ("digits", "glyphs" for characters, "fonts" for the style of glyphs); its logits also
score class accuracy (`evaluation.accuracy`). Its weights ship with the package (`weights/`) and are made by
`scripts/train_feature_classifier.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

WEIGHTS_DIR = Path(__file__).parent / "weights"

# ITU-R BT.601 luma weights; they sum to 1, so grey values stay in [-1, 1].
RGB_TO_GREY = (0.299, 0.587, 0.114)


def to_grey_square(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """
    Brings any (N, C, H, W) batch in [-1, 1] to the (N, 1, image_size, image_size) input of a grey classifier: RGB is
    converted to grey, other sizes are resized bilinearly.
    """
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (N, C, H, W); got shape {tuple(images.shape)}.")
    channels = images.shape[1]
    if channels == 3:
        weights = images.new_tensor(RGB_TO_GREY).view(1, 3, 1, 1)
        images = (images * weights).sum(dim=1, keepdim=True)  # (N, 3, H, W) -> (N, 1, H, W)
    elif channels != 1:
        raise ValueError(f"Expected grey (1 channel) or RGB (3 channels) images; got {channels} channels.")
    if images.shape[-2:] != (image_size, image_size):
        # Not antialiased: plain bilinear gives back an 8x8 digit that was upscaled 2x or 4x with nearest, while the
        # antialiasing filter blurs it enough to cost some 40 FID points. (N, 1, H, W) -> (N, 1, size, size)
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return images


class GreyImageClassifier(nn.Module):
    """
    The shared shape of the shipped classifiers: `convolutions` -> `projection` (the penultimate layer that FID and
    KID compare, standardized by `features`) -> ReLU, dropout -> `classifier` (the class logits of `forward`).

    Inputs are (N, C, H, W) tensors in [-1, 1]; RGB images are converted to grey and other sizes are resized to
    `image_size`, so the output of any image generator can be scored.
    """

    image_size: int
    num_classes: int
    feature_dim: int

    def __init__(self, convolutions: nn.Module, flat_dim: int, num_classes: int | None = None):
        super().__init__()
        if num_classes is not None:
            self.num_classes = num_classes
        self.convolutions = convolutions
        self.projection = nn.Linear(flat_dim, self.feature_dim)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(self.feature_dim, self.num_classes)
        # Statistics of the penultimate layer on the training images, set by the training script: `features`
        # standardizes with them, so the cubic kernel of KID sees values of order 1 whatever the layer's own scale.
        self.register_buffer("feature_mean", torch.zeros(self.feature_dim))
        self.register_buffer("feature_std", torch.ones(self.feature_dim))

    def penultimate(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images in [-1, 1] -> (N, feature_dim) penultimate layer, before its ReLU."""
        images = to_grey_square(images.to(self.projection.weight.dtype), self.image_size)
        hidden = self.convolutions(images).flatten(1)  # (N, C', H', W') -> (N, C' * H' * W')
        return self.projection(hidden)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """
        (N, C, H, W) images in [-1, 1] -> (N, feature_dim) standardized penultimate layer. It is taken before the
        ReLU: after it, more than half of the units are zero on every image and the covariance that FID needs is
        singular.
        """
        return (self.penultimate(images) - self.feature_mean) / self.feature_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images in [-1, 1] -> (N, num_classes) class logits."""
        return self.classifier(self.dropout(F.relu(self.penultimate(images))))


class DigitsClassifier(GreyImageClassifier):
    """
    A small CNN for scikit-learn's 8x8 digits (10 classes). `features` returns the 64-d penultimate layer that FID and
    KID compare; `forward` returns the class logits.
    """

    image_size = 8
    num_classes = 10
    feature_dim = 64

    def __init__(self):
        convolutions = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),  # (N, 1, 8, 8) -> (N, 32, 8, 8)
            nn.ReLU(),
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> (N, 32, 4, 4)
            nn.Conv2d(32, 64, kernel_size=3, padding=1),  # -> (N, 64, 4, 4)
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> (N, 64, 2, 2)
        )
        super().__init__(convolutions, flat_dim=64 * 2 * 2)


def _glyph_convolutions() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),  # (N, 1, 32, 32) -> (N, 16, 32, 32)
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> (N, 16, 16, 16)
        nn.Conv2d(16, 32, kernel_size=3, padding=1),  # -> (N, 32, 16, 16)
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> (N, 32, 8, 8)
        nn.Conv2d(32, 64, kernel_size=3, padding=1),  # -> (N, 64, 8, 8)
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> (N, 64, 4, 4)
    )


class GlyphsClassifier(GreyImageClassifier):
    """
    A small CNN for the 32x32 glyphs corpus (`hf_genxfer.data.glyphs`): 62 classes, the characters A-Z, a-z, 0-9 in
    that order. `features` returns the 128-d penultimate layer; `forward` the class logits.
    """

    image_size = 32
    num_classes = 62
    feature_dim = 128

    def __init__(self):
        super().__init__(_glyph_convolutions(), flat_dim=64 * 4 * 4)


class FontsClassifier(GreyImageClassifier):
    """
    The style counterpart of `GlyphsClassifier`: the same CNN trained to name the font of a 32x32 glyph (one class per
    font in `fonts`, whatever the character), as few-shot font generation measures style with a font classifier and
    content with a character classifier. `features` is its 128-d penultimate layer (FID and KID in a style feature
    space); `forward` the font logits. The shipped one knows every font of `available_glyph_fonts()` at training
    time, listed in `weights/fonts_classifier.json`.
    """

    image_size = 32
    feature_dim = 128

    def __init__(self, fonts: list[str]):
        if len(fonts) < 2:
            raise ValueError(f"A font classifier needs at least two fonts; got {list(fonts)}.")
        super().__init__(_glyph_convolutions(), flat_dim=64 * 4 * 4, num_classes=len(fonts))
        self.fonts = list(fonts)


def _load_shipped_classifier(model: GreyImageClassifier, weights_name: str, dataset: str) -> GreyImageClassifier:
    path = WEIGHTS_DIR / f"{weights_name}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"The {dataset} classifier weights are missing at {path}; "
            f"make them with `python scripts/train_feature_classifier.py --dataset {dataset}`."
        )
    model.load_state_dict(load_file(path))
    return model


def load_digits_classifier() -> DigitsClassifier:
    """The digits classifier with the weights shipped in `weights/digits_classifier.safetensors`."""
    return _load_shipped_classifier(DigitsClassifier(), "digits_classifier", "digits")


def load_glyphs_classifier() -> GlyphsClassifier:
    """The glyphs classifier with the weights shipped in `weights/glyphs_classifier.safetensors`."""
    return _load_shipped_classifier(GlyphsClassifier(), "glyphs_classifier", "glyphs")


def shipped_font_names() -> list[str]:
    """The fonts the shipped font classifier tells apart, in the order of its logits."""
    report = WEIGHTS_DIR / "fonts_classifier.json"
    if not report.is_file():
        raise FileNotFoundError(
            f"The fonts classifier report is missing at {report}; "
            "make it with `python scripts/train_feature_classifier.py --dataset fonts`."
        )
    return list(json.loads(report.read_text())["fonts"])


def load_fonts_classifier() -> FontsClassifier:
    """The font (style) classifier with the weights shipped in `weights/fonts_classifier.safetensors`."""
    return _load_shipped_classifier(FontsClassifier(shipped_font_names()), "fonts_classifier", "fonts")


_FEATURE_NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "digits": load_digits_classifier,
    "glyphs": load_glyphs_classifier,
    "fonts": load_fonts_classifier,
}


def register_feature_network(name: str, factory: Callable[[], nn.Module]) -> None:
    """
    Makes `load_feature_network(name)` (and `feature_network=name` in FID and KID) build a network with `factory`, a
    function without arguments that returns an `nn.Module` with a `features(images) -> (N, D)` method.
    """
    if name in _FEATURE_NETWORKS:
        raise ValueError(f"A feature network named {name!r} is already registered.")
    if not callable(factory):
        raise TypeError(f"factory must be a function that returns an nn.Module; got {type(factory).__name__}.")
    _FEATURE_NETWORKS[name] = factory


def available_feature_networks() -> list[str]:
    """The names `load_feature_network` accepts."""
    return sorted(_FEATURE_NETWORKS)


def load_feature_network(name: str = "digits") -> nn.Module:
    """Builds the registered feature network `name` in eval mode with frozen parameters."""
    if name not in _FEATURE_NETWORKS:
        raise ValueError(
            f"Unknown feature network {name!r}; registered ones are: {', '.join(available_feature_networks())}."
        )
    network = _FEATURE_NETWORKS[name]()
    network.eval()
    network.requires_grad_(False)
    return network
