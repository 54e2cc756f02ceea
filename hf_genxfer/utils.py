"""Small helpers shared across the package: image grids and user-facing warnings."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import torch
from PIL import Image


def image_grid(
    images: torch.Tensor, nrow: int | None = None, scale: int | None = None, padding: int = 1
) -> Image.Image:
    """
    (N, C, H, W) images in [-1, 1] -> one PIL grid image with `nrow` images per row. Small images are enlarged by
    `scale` (nearest neighbour; by default up to about 32 pixels) so that an 8x8 digit is readable.
    """
    images = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2  # [-1, 1] -> [0, 1]
    count, channels, height, width = images.shape
    nrow = nrow or math.ceil(math.sqrt(count))
    ncol = math.ceil(count / nrow)
    scale = scale or max(1, 32 // max(height, width))
    grid = np.ones((ncol * (height + padding) + padding, nrow * (width + padding) + padding, channels), np.float32)
    for index in range(count):
        row, col = divmod(index, nrow)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[top : top + height, left : left + width] = images[index].permute(1, 2, 0).numpy()
    grid = (grid * 255).round().astype(np.uint8)
    picture = Image.fromarray(grid[:, :, 0] if channels == 1 else grid, mode="L" if channels == 1 else None)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return picture


def warn(message: str) -> None:
    """One line on stderr, from the main process only (`RANK`/`LOCAL_RANK` as torchrun and accelerate set them)."""
    if os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"Warning: {message}", file=sys.stderr, flush=True)
