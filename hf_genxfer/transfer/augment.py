"""DiffAugment (Zhao et al., 2020): differentiable augmentations applied to every image the discriminator sees, real
and generated, so that a GAN trained on a few images does not let its discriminator memorise them.

Images are in [-1, 1]. Translation pads with the background value -1 (black) and never wraps around, and cutout
paints its square with the same value: on 8x8 digits the original zero padding would be mid-grey and wrap-around
would move strokes to the opposite edge. Pass `background=0.0` for images in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

DIFF_AUGMENT_POLICIES = ("color", "translation", "cutout")
BACKGROUND = -1.0


def _parse_policy(policy: str | Iterable[str]) -> list[str]:
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in DIFF_AUGMENT_POLICIES]
    if unknown:
        raise ValueError(
            f"Unknown DiffAugment policy {', '.join(map(repr, unknown))}: use a comma-separated subset of "
            f"{', '.join(DIFF_AUGMENT_POLICIES)}."
        )
    return names


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) draws made on the generator's device (so a seeded CPU generator gives the same draws
    whatever device the images are on), then moved next to the images."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device, like.dtype)


def _randint(low: int, high: int, size: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    return torch.randint(low, high, (size,), generator=generator, device=device).to(like.device)


def _color(images: torch.Tensor, generator: torch.Generator | None, background: float) -> torch.Tensor:
    batch = images.shape[0]
    # brightness: add U(-0.5, 0.5)
    images = images + (_uniform((batch, 1, 1, 1), generator, images) - 0.5)
    # saturation: scale the distance to the per-pixel channel mean by U(0, 2) (a no-op on grey images)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_uniform((batch, 1, 1, 1), generator, images) * 2) + mean
    # contrast: scale the distance to the image mean by U(0.5, 1.5)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform((batch, 1, 1, 1), generator, images) + 0.5) + mean


def _translation(
    images: torch.Tensor, generator: torch.Generator | None, background: float, ratio: float = 0.125
) -> torch.Tensor:
    batch, _, height, width = images.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = _randint(-shift_y, shift_y + 1, batch, generator, images)
    dx = _randint(-shift_x, shift_x + 1, batch, generator, images)
    padded = F.pad(images, (shift_x, shift_x, shift_y, shift_y), value=background)  # (B, C, H+2sy, W+2sx)
    # Output pixel (i, j) reads input pixel (i - dy, j - dx): the content moves by (dy, dx), the border fills in.
    rows = torch.arange(height, device=images.device).view(1, height, 1) + shift_y - dy.view(batch, 1, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width) + shift_x - dx.view(batch, 1, 1)
    samples = torch.arange(batch, device=images.device).view(batch, 1, 1)
    return padded.permute(0, 2, 3, 1)[samples, rows, cols].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def _cutout(
    images: torch.Tensor, generator: torch.Generator | None, background: float, ratio: float = 0.5
) -> torch.Tensor:
    batch, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    # The square's centre is anywhere in the image, so it may hang over an edge (as in the original).
    top = _randint(0, height + (1 - size_y % 2), batch, generator, images) - size_y // 2
    left = _randint(0, width + (1 - size_x % 2), batch, generator, images) - size_x // 2
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    inside = (
        (rows >= top.view(batch, 1, 1))
        & (rows < (top + size_y).view(batch, 1, 1))
        & (cols >= left.view(batch, 1, 1))
        & (cols < (left + size_x).view(batch, 1, 1))
    ).unsqueeze(1)  # (B, 1, H, W)
    return torch.where(inside, torch.full_like(images, background), images)


_AUGMENTATIONS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(
    images: torch.Tensor,
    policy: str | Iterable[str] = "color,translation,cutout",
    generator: torch.Generator | None = None,
    background: float = BACKGROUND,
) -> torch.Tensor:
    """Apply the DiffAugment `policy` to a batch of images (B, C, H, W) in [-1, 1], C = 1 or 3.

    Each image gets its own random parameters; the result is differentiable w.r.t. `images` and the same for the
    same seeded `generator`.

    Args:
        policy: a comma-separated string or list of `color`, `translation` (shift by up to 1/8 of the size, padded
            with -1), `cutout` (a square of half the size set to -1); applied in the order listed.
        generator: a `torch.Generator` for reproducible draws (on the CPU, draws are the same on every device).
        background: the value translation pads with and cutout paints (-1: black for images in [-1, 1]).
    """
    if images.dim() != 4:
        raise ValueError(f"`images` must have shape (B, C, H, W), got {tuple(images.shape)}.")
    for name in _parse_policy(policy):
        images = _AUGMENTATIONS[name](images, generator, background)
    return images


class DiffAugment(nn.Module):
    """DiffAugment as a module: `augment(images)`, or `augment(real, fake)` to apply the same policy to both batches.

    Args:
        policy: as in [`diff_augment`]; validated here.
        generator: an optional seeded `torch.Generator`, shared by every call.
        background: as in [`diff_augment`].

    Example:
    ```python
    >>> augment = DiffAugment("color,translation,cutout")
    >>> # (1) discriminator step: real and fake go through the same policy
    >>> logits = discriminator(augment(torch.cat([real, fake])), class_labels=labels).logits
    >>> # (2) generator step: the generator learns through the augmentation
    >>> fake_logits = discriminator(augment(generator(latents).images)).logits
    ```
    """

    def __init__(
        self,
        policy: str | Iterable[str] = "color,translation,cutout",
        generator: torch.Generator | None = None,
        background: float = BACKGROUND,
    ):
        super().__init__()
        self.policy = _parse_policy(policy)
        self.generator = generator
        self.background = float(background)

    def forward(self, *batches: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if not batches:
            raise TypeError("DiffAugment needs at least one batch of images.")
        augmented = tuple(diff_augment(images, self.policy, self.generator, self.background) for images in batches)
        return augmented[0] if len(augmented) == 1 else augmented

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)!r}, background={self.background}"


__all__ = ["BACKGROUND", "DIFF_AUGMENT_POLICIES", "DiffAugment", "diff_augment"]
