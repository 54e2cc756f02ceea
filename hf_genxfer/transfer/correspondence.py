"""Cross-domain correspondence (CDC, Ojha et al., "Few-shot Image Generation via Cross-domain Correspondence", CVPR
2021) for few-shot GAN adaptation: the adapted generator keeps the source generator's relative similarities between
samples, so that what told samples apart in the source (which character, which stroke) still does after adaptation.

For a batch of latents (and class labels drawn over every class the generator knows, so that classes missing from
the target data keep their place too), both generators' block outputs are compared pairwise by cosine similarity;
each sample's similarities to the others become a distribution (softmax), and the loss is the KL divergence of the
adapted generator's distributions from the source's, averaged over blocks.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn


@contextlib.contextmanager
def block_outputs(generator: nn.Module):
    """Collects the output of each of `generator.blocks` during the forward passes run inside the block."""
    outputs: list[torch.Tensor] = []
    hooks = [
        block.register_forward_hook(lambda module, args, output: outputs.append(output)) for block in generator.blocks
    ]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


def similarity_distributions(features: torch.Tensor) -> torch.Tensor:
    """(N, ...) features -> (N, N-1) log-softmax over each sample's cosine similarities to the other samples."""
    flat = F.normalize(features.flatten(1).float(), dim=1)
    similarities = flat @ flat.T  # (N, N)
    count = len(flat)
    off_diagonal = ~torch.eye(count, dtype=torch.bool, device=flat.device)
    return F.log_softmax(similarities[off_diagonal].reshape(count, count - 1), dim=1)


class CrossDomainCorrespondence(nn.Module):
    """
    The CDC loss against a frozen copy of the source generator, taken when this is built (before any freezing or
    adapter). `weight` scales it (the paper uses 1000 on StyleGAN2 with few samples); `batch_size` latents per step.
    """

    def __init__(self, source_generator: nn.Module, weight: float, batch_size: int = 16):
        super().__init__()
        if not weight > 0:
            raise ValueError(f"The CDC weight must be positive, got {weight!r}.")
        if batch_size < 3:
            raise ValueError(f"CDC needs at least 3 latents per batch to compare similarities, got {batch_size}.")
        self.source = copy.deepcopy(source_generator).eval().requires_grad_(False)
        self.weight = float(weight)
        self.batch_size = int(batch_size)

    def sample(self, noise: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Latents and class labels (over every class of the generator) for one step, from the run's seeded noise."""
        config = self.source.config
        latents = torch.randn(self.batch_size, config.latent_size, generator=noise).to(device)
        labels = None
        if config.num_classes is not None:
            labels = torch.randint(0, config.num_classes, (self.batch_size,), generator=noise).to(device)
        return latents, labels

    def forward(self, generator: nn.Module, latents: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The weighted CDC loss of `generator` (the adapted one, with gradients) on these latents."""
        with block_outputs(generator) as adapted:
            generator(latents, class_labels=labels)
        with torch.no_grad(), block_outputs(self.source) as source:
            self.source(latents, class_labels=labels)
        losses = [
            F.kl_div(similarity_distributions(a), similarity_distributions(s), reduction="batchmean", log_target=True)
            for a, s in zip(adapted, source)
        ]
        return self.weight * torch.stack(losses).mean()


__all__ = ["CrossDomainCorrespondence", "block_outputs", "similarity_distributions"]
