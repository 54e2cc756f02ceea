"""Scoring a generator: seeded samples (the real label mix for a conditional model, one task of a multi-task one)
against real images, as FID and KID in a shipped feature network's space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..models.gan import GANGenerator


@torch.no_grad()
def generate_images(
    generator: GANGenerator,
    num_images: int,
    labels: torch.Tensor | None,
    seed: int,
    batch_size: int = 256,
    task: str | None = None,
) -> torch.Tensor:
    """
    `num_images` samples (N, C, H, W) in [-1, 1] from seeded latents; `labels` (cycled) for a conditional model,
    `task` for a multi-task one.
    """
    was_training = generator.training
    generator.eval()
    noise = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, num_images, batch_size):
        count = min(batch_size, num_images - start)
        latents = generator.sample_latents(count, generator=noise)
        batch_labels = None
        if generator.config.num_classes is not None:
            batch_labels = labels[torch.arange(start, start + count) % len(labels)].to(generator.device)
        chunks.append(generator(latents, class_labels=batch_labels, task=task).images.float().cpu())
    generator.train(was_training)
    return torch.cat(chunks)


def score_generator(
    generator: GANGenerator,
    real_images: torch.Tensor,
    real_labels: torch.Tensor | None,
    num_samples: int,
    feature_network: str = "digits",
    seed: int = 0,
    task: str | None = None,
) -> dict:
    """
    FID and KID of `num_samples` generated images against the real ones (conditional: the real label mix;
    multi-task: the images of `task`).
    """
    scores = score_generator_in_spaces(
        generator, real_images, real_labels, num_samples, [feature_network], seed=seed, task=task
    )
    return next(iter(scores.values()))


def score_generator_in_spaces(
    generator: GANGenerator,
    real_images: torch.Tensor,
    real_labels: torch.Tensor | None,
    num_samples: int,
    feature_networks: Sequence,
    seed: int = 0,
    task: str | None = None,
) -> dict[str, dict]:
    """
    `score_generator` in several feature spaces (e.g. "glyphs" for content and "fonts" for style) from one set of
    generated images: {network name: FID and KID in its features}.
    """
    from . import extract_features, load_metric

    labels = None
    if generator.config.num_classes is not None:
        labels = real_labels[torch.randperm(len(real_labels), generator=torch.Generator().manual_seed(seed))]
    generated = generate_images(generator, num_samples, labels, seed, task=task)
    scores = {}
    for network in feature_networks:
        # Features once, for both metrics.
        features = {
            "predictions_features": extract_features(generated, network),
            "references_features": extract_features(real_images, network),
        }
        name = network if isinstance(network, str) else type(network).__name__
        fid = load_metric("fid").compute(feature_network=name, **features)
        kid = load_metric("kid", seed=seed).compute(feature_network=name, **features)
        scores[name] = {**fid, **kid, "feature_network": name}
    return scores


__all__ = ["generate_images", "score_generator", "score_generator_in_spaces"]
