"""The hf_genxfer GAN as transformers models: generator, discriminator and the pair of them.

Models hold no training code: losses, optimizers, EMA and devices live in `hf_genxfer.training`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_gan import GANConfig


@dataclass
class GANGeneratorOutput(ModelOutput):
    """
    Args:
        images (`torch.FloatTensor` of shape `(batch_size, channels, height, width)`):
            Generated images with values in [-1, 1].
    """

    images: torch.FloatTensor | None = None


@dataclass
class GANDiscriminatorOutput(ModelOutput):
    """
    Args:
        logits (`torch.FloatTensor` of shape `(batch_size,)`):
            Realness scores (before any sigmoid).
        class_logits (`torch.FloatTensor` of shape `(batch_size, num_classes)`, *optional*):
            The auxiliary classifier's class scores (`config.auxiliary_classifier`), else None.
    """

    logits: torch.FloatTensor | None = None
    class_logits: torch.FloatTensor | None = None


class GANPixelNorm(nn.Module):
    """Normalises each pixel's feature vector to unit length (ProGAN): no statistics, so eval equals train."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return _unit_second_moment(hidden)


def _unit_second_moment(hidden: torch.Tensor) -> torch.Tensor:
    """Scales each row (each pixel's feature vector) to unit mean square along dim 1."""
    return hidden * torch.rsqrt(hidden.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class GANModulation(nn.Linear):
    """
    Style vector -> one generator layer's per-channel `(scale, shift)`, applied after its PixelNorm as
    `hidden * (1 + scale) + shift` (class-conditional normalisation). A plain Linear, so LoRA adapts it; initialised
    small, so a new generator starts close to the unmodulated one.
    """

    def __init__(self, style_size: int, channels: int):
        super().__init__(style_size, 2 * channels)


class GANGeneratorBlock(nn.Module):
    """Optional 2x nearest upsampling, then Conv2d + LeakyReLU + PixelNorm layers, each modulated by the style vector
    when the generator has a style mapping (`config.style_mapping_layers > 0`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        upsample: bool,
        negative_slope: float,
        style_size: int | None = None,
    ):
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest") if upsample else nn.Identity()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1) for i in range(num_layers)
        )
        if style_size is not None:
            self.modulations = nn.ModuleList(GANModulation(style_size, out_channels) for _ in range(num_layers))
        self.activation = nn.LeakyReLU(negative_slope)
        self.norm = GANPixelNorm()

    def forward(self, hidden: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.upsample(hidden)  # (B, C, H, W) -> (B, C, 2H, 2W) when upsampling
        modulations = getattr(self, "modulations", None)
        for index, conv in enumerate(self.convs):
            hidden = self.norm(self.activation(conv(hidden)))
            if modulations is not None:
                # Called as a module (not through a helper method) so that a LoRA wrapper around it takes part.
                scale, shift = modulations[index](style)[:, :, None, None].chunk(
                    2, dim=1
                )  # (B, 2C) -> 2 x (B, C, 1, 1)
                hidden = hidden * (1 + scale) + shift
        return hidden


class GANDiscriminatorBlock(nn.Module):
    """Spectral-normed Conv2d + LeakyReLU layers, then optional 2x average-pool downsampling."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, downsample: bool, negative_slope: float):
        super().__init__()
        self.convs = nn.ModuleList(
            spectral_norm(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1))
            for i in range(num_layers)
        )
        self.activation = nn.LeakyReLU(negative_slope)
        self.downsample = nn.AvgPool2d(2) if downsample else nn.Identity()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            hidden = self.activation(conv(hidden))
        return self.downsample(hidden)  # (B, C, H, W) -> (B, C, H/2, W/2) when downsampling


def _minibatch_std(hidden: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """
    Appends one channel holding the mean standard deviation within groups of consecutive samples (ProGAN).
    Groups are consecutive so that a batch made of [real; fake] halves never mixes the two (when group_size divides
    each half).
    """
    batch, channels, height, width = hidden.shape
    group = min(group_size, batch)
    while batch % group:
        group -= 1
    grouped = hidden.reshape(batch // group, group, channels, height, width)
    # The variance as a mean of squared deviations: the same values as `var(dim=1, unbiased=False)`, whose CPU kernel
    # is 50x slower on these small groups (12-17% of an 8x8 training step, genxfer bench speed's profile).
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    std = (centered.square().mean(dim=1) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/G,)
    std = std.repeat_interleave(group).reshape(batch, 1, 1, 1).expand(batch, 1, height, width)
    return torch.cat([hidden, std], dim=1)  # (B, C, H, W) -> (B, C+1, H, W)


def _route(task_ids: torch.Tensor, heads: list[nn.Module], hidden: torch.Tensor, *extras) -> torch.Tensor:
    """
    Sends each example through the head of its task only (with its rows of `extras`, e.g. class labels), so a
    task's head gets no gradient from other tasks' examples.
    """
    tasks = torch.unique(task_ids)
    if len(tasks) == 1:
        return heads[int(tasks[0])](hidden, *extras)
    outputs = None
    for task in tasks.tolist():
        index = (task_ids == task).nonzero(as_tuple=True)[0]
        routed = heads[task](hidden[index], *(None if extra is None else extra[index] for extra in extras))
        if outputs is None:
            outputs = routed.new_empty((hidden.shape[0], *routed.shape[1:]))
        outputs = outputs.index_copy(0, index, routed)
    return outputs


class GANPreTrainedModel(PreTrainedModel):
    config_class = GANConfig
    base_model_prefix = "gan"
    main_input_name = "latents"
    supports_gradient_checkpointing = False

    def task_ids(self, task, batch_size: int) -> torch.Tensor | None:
        """`task` (a name, a list of names, or a tensor of task indices) -> (B,) task indices; None when single-task."""
        names = self.config.task_names
        if names is None:
            if task is not None:
                raise ValueError("This GAN is single-task (config.task_names is None): drop task.")
            return None
        if task is None:
            raise ValueError(f"This GAN is multi-task: pass task= one of {', '.join(names)}.")
        if isinstance(task, torch.Tensor):
            ids = task.to(self.device, torch.long).reshape(-1)
        else:
            task = [task] if isinstance(task, str) else list(task)
            unknown = [t for t in task if t not in names]
            if unknown:
                raise ValueError(f"Unknown task {unknown[0]!r}: this GAN's tasks are {', '.join(names)}.")
            ids = torch.tensor([names.index(t) for t in task], device=self.device)
        if ids.numel() == 1:
            ids = ids.expand(batch_size)
        elif ids.numel() != batch_size:
            raise ValueError(f"Pass one task or {batch_size} (one per example), got {ids.numel()}.")
        if ids.min() < 0 or ids.max() >= len(names):
            raise ValueError(f"Task indices must lie in [0, {len(names) - 1}], got {ids.tolist()}.")
        return ids

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        slope = self.config.negative_slope
        if isinstance(module, GANGenerator) and module.config.learned_latent_affine:
            init.zeros_(module.latent_shift)  # the identity, also when a source without them is transferred
            init.zeros_(module.latent_log_scale)
        if not isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
            return
        # A spectral-normed layer keeps its trainable weight under parametrizations.weight.original.
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        was_loaded = getattr(weight, "_is_hf_initialized", False)  # from_pretrained: init leaves loaded tensors be
        if isinstance(module, GANModulation):  # scale and shift start near zero: near the unmodulated generator
            init.normal_(weight, mean=0.0, std=0.1 / module.in_features**0.5)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(weight, mean=0.0, std=1.0)
        else:
            init.kaiming_normal_(weight, a=slope, nonlinearity="leaky_relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        if hasattr(module, "parametrizations"):
            _refresh_spectral_norm(module, weight_was_loaded=was_loaded)


def _refresh_spectral_norm(module: nn.Module, weight_was_loaded: bool, iterations: int = 50) -> None:
    """
    Power iterations for a spectral-normed layer whose weight was just (re)initialised. `spectral_norm` estimates the
    top singular vectors when it wraps the layer, and initialisation replaces the weight afterwards: without this the
    stored vectors belong to the old weight, and in eval mode the layer is far from 1-Lipschitz until training has
    run enough power iterations. Vectors loaded with their weight (from_pretrained) are kept as saved.
    """
    for parametrization in module.parametrizations.weight:
        u, v = getattr(parametrization, "_u", None), getattr(parametrization, "_v", None)
        if u is None or v is None:
            continue  # a 1-d weight needs no estimate
        if weight_was_loaded and getattr(u, "_is_hf_initialized", False):
            continue
        weight = module.parametrizations.weight.original
        if parametrization.dim != 0:
            weight = weight.movedim(parametrization.dim, 0)
        matrix = weight.flatten(1)  # (out, in*k*k), as the parametrization reads it
        for _ in range(iterations):  # from the current (random) vectors, as spectral_norm itself starts
            v.copy_(nn.functional.normalize(matrix.mT @ u, dim=0, eps=parametrization.eps))
            u.copy_(nn.functional.normalize(matrix @ v, dim=0, eps=parametrization.eps))


class GANGeneratorHead(nn.Module):
    """The task-specific end of a multi-task generator: its late blocks and output layer."""

    def __init__(self, config: GANConfig, first_block: int):
        super().__init__()
        widths = config.block_widths
        self.blocks = nn.ModuleList(_generator_block(config, i) for i in range(first_block, len(widths)))
        self.to_image = nn.Conv2d(widths[-1], config.image_channels, 1)

    def forward(self, hidden: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            hidden = block(hidden, style)
        return torch.tanh(self.to_image(hidden))  # (B, W, S, S) -> (B, C, S, S)


def _generator_block(config: GANConfig, index: int) -> GANGeneratorBlock:
    widths = config.block_widths
    return GANGeneratorBlock(
        widths[max(index - 1, 0)],
        widths[index],
        config.layers_per_block,
        index > 0,
        config.negative_slope,
        style_size=config.style_size if config.style_mapping_layers else None,
    )


class GANGenerator(GANPreTrainedModel):
    """
    Maps latents (and class labels when conditional) to images in [-1, 1].

    Multi-task (`config.task_names`): the mapping and the first `config.shared_blocks` blocks are shared, and each
    task has its own head (late blocks + output layer) in `task_heads`; with `shared_blocks=None` everything is
    shared and a task embedding joins the latent.

    Per-layer conditioning (`config.style_mapping_layers > 0`): `style_mapping` maps the latent, class and task
    embeddings (each scaled to unit mean square) to a style vector, and every block's layers are modulated by it
    (`GANModulation`), so the class and the latent reach every resolution.
    """

    _no_split_modules = ["GANGeneratorBlock"]  # FSDP's transformer-based wrap shards block by block

    def __init__(self, config: GANConfig):
        super().__init__(config)
        widths = config.block_widths
        mapping_in = config.latent_size
        if config.num_classes is not None:
            self.class_embedding = nn.Embedding(config.num_classes, config.class_embedding_size)
            mapping_in += config.class_embedding_size
        if config.task_conditioned:
            self.task_embedding = nn.Embedding(len(config.task_names), config.task_embedding_size)
            mapping_in += config.task_embedding_size
        if config.learned_latent_affine:  # identity at the start: latents * exp(0) + 0
            self.latent_shift = nn.Parameter(torch.zeros(config.latent_size))
            self.latent_log_scale = nn.Parameter(torch.zeros(config.latent_size))
        self.mapping = nn.Linear(mapping_in, widths[0] * 4 * 4)
        self.mapping_activation = nn.LeakyReLU(config.negative_slope)
        if config.style_mapping_layers:
            layers = []
            for index in range(config.style_mapping_layers):
                layers += [
                    nn.Linear(mapping_in if index == 0 else config.style_size, config.style_size),
                    nn.LeakyReLU(config.negative_slope),
                ]
            self.style_mapping = nn.Sequential(*layers)
        self.mapping_norm = GANPixelNorm()
        shared = config.num_shared_blocks
        self.blocks = nn.ModuleList(_generator_block(config, i) for i in range(shared))
        if config.is_multitask and not config.task_conditioned:
            self.task_heads = nn.ModuleDict({task: GANGeneratorHead(config, shared) for task in config.task_names})
        else:
            self.to_image = nn.Conv2d(widths[-1], config.image_channels, 1)
        self.post_init()

    def sample_latents(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """
        Standard-normal latents of shape (batch_size, latent_size) in the model's dtype, reproducible for a seeded
        generator: drawn in float32 on the CPU (the same numbers on every device and for every dtype), then moved.
        """
        latents = torch.randn(batch_size, self.config.latent_size, generator=generator)
        return latents.to(device=device if device is not None else self.device, dtype=self.dtype)

    def forward(
        self,
        latents: torch.Tensor,
        class_labels: torch.LongTensor | None = None,
        task: str | list[str] | torch.LongTensor | None = None,
        return_dict: bool = True,
    ) -> GANGeneratorOutput | tuple:
        task_ids = self.task_ids(task, latents.shape[0])
        if self.config.learned_latent_affine:
            latents = latents * self.latent_log_scale.exp() + self.latent_shift  # (B, Z)
        parts = [latents]
        if self.config.num_classes is not None:
            if class_labels is None:
                raise ValueError(
                    f"This generator is class-conditional ({self.config.num_classes} classes): pass class_labels."
                )
            parts.append(self.class_embedding(class_labels))  # (B, E)
        elif class_labels is not None:
            raise ValueError("This generator is unconditional (config.num_classes is None): drop class_labels.")
        if self.config.task_conditioned:
            parts.append(self.task_embedding(task_ids))  # (B, T)
        inputs = torch.cat(parts, dim=1)  # (B, Z+E+T)
        style = None
        if hasattr(self, "style_mapping"):
            style = self.style_mapping(torch.cat([_unit_second_moment(part) for part in parts], dim=1))  # (B, S)
        hidden = self.mapping(inputs).reshape(latents.shape[0], -1, 4, 4)  # (B, Z+E+T) -> (B, W0, 4, 4)
        hidden = self.mapping_norm(self.mapping_activation(hidden))
        for block in self.blocks:
            hidden = block(hidden, style)  # (B, W_i, R, R) -> (B, W_i+1, 2R, 2R)
        if hasattr(self, "task_heads"):
            heads = [self.task_heads[name] for name in self.config.task_names]
            images = _route(task_ids, heads, hidden, style)  # each example through its task's head
        else:
            images = torch.tanh(self.to_image(hidden))  # (B, W, S, S) -> (B, C, S, S)
        if not return_dict:
            return (images,)
        return GANGeneratorOutput(images=images)


class GANDiscriminator(GANPreTrainedModel):
    """Scores images (and class labels when conditional, by projection) as real or fake."""

    main_input_name = "images"
    _no_split_modules = ["GANDiscriminatorBlock"]  # FSDP's transformer-based wrap shards block by block

    def __init__(self, config: GANConfig):
        super().__init__(config)
        widths = list(reversed(config.block_widths))  # full resolution first
        slope = config.negative_slope
        self.from_image = spectral_norm(nn.Conv2d(config.image_channels, widths[0], 1))
        self.blocks = nn.ModuleList(
            GANDiscriminatorBlock(widths[i], widths[i + 1], config.layers_per_block, True, slope)
            for i in range(len(widths) - 1)
        )
        self.final_block = GANDiscriminatorBlock(
            widths[-1] + int(config.minibatch_std), widths[-1], config.layers_per_block, False, slope
        )
        self.activation = nn.LeakyReLU(slope)
        features = widths[-1] * 4 * 4
        if config.is_multitask:
            self.task_heads = nn.ModuleDict(
                {task: GANDiscriminatorHead(config, features) for task in config.task_names}
            )
        else:
            self.head = spectral_norm(nn.Linear(features, 1))
            if config.num_classes is not None:
                self.class_projection = spectral_norm(nn.Embedding(config.num_classes, features))
            if config.auxiliary_classifier:  # no spectral norm: a classifier needs its logits' scale
                self.class_head = nn.Linear(features, config.num_classes)
        self.post_init()

    def forward(
        self,
        images: torch.Tensor,
        class_labels: torch.LongTensor | None = None,
        task: str | list[str] | torch.LongTensor | None = None,
        return_dict: bool = True,
    ) -> GANDiscriminatorOutput | tuple:
        task_ids = self.task_ids(task, images.shape[0])
        if self.config.num_classes is not None and class_labels is None:
            raise ValueError(
                f"This discriminator is class-conditional ({self.config.num_classes} classes): pass class_labels."
            )
        hidden = self.activation(self.from_image(images))  # (B, C, S, S) -> (B, W, S, S)
        for block in self.blocks:
            hidden = block(hidden)  # (B, W, R, R) -> (B, W', R/2, R/2)
        if self.config.minibatch_std:
            hidden = _minibatch_std(hidden)  # (B, W, 4, 4) -> (B, W+1, 4, 4)
        features = self.final_block(hidden).flatten(1)  # (B, W*16)
        if task_ids is not None:
            heads = [self.task_heads[name] for name in self.config.task_names]
            logits = _route(task_ids, heads, features, class_labels)  # (B,)
        else:
            logits = _projection_logits(self.head, getattr(self, "class_projection", None), features, class_labels)
        class_logits = self.class_head(features) if hasattr(self, "class_head") else None  # (B, num_classes)
        if not return_dict:
            return (logits,) if class_logits is None else (logits, class_logits)
        return GANDiscriminatorOutput(logits=logits, class_logits=class_logits)


def _projection_logits(head: nn.Module, class_projection: nn.Module | None, features, class_labels) -> torch.Tensor:
    logits = head(features).squeeze(1)  # (B,)
    if class_projection is not None:
        # Projection discriminator (Miyato & Koyama, 2018): the class enters as an inner product.
        logits = logits + (class_projection(class_labels) * features).sum(dim=1)
    return logits


class GANDiscriminatorHead(nn.Module):
    """One task's output head on the shared discriminator trunk (with its own class projection when conditional)."""

    def __init__(self, config: GANConfig, features: int):
        super().__init__()
        self.head = spectral_norm(nn.Linear(features, 1))
        if config.num_classes is not None:
            self.class_projection = spectral_norm(nn.Embedding(config.num_classes, features))

    def forward(self, features: torch.Tensor, class_labels: torch.LongTensor | None = None) -> torch.Tensor:
        return _projection_logits(self.head, getattr(self, "class_projection", None), features, class_labels)


class GANModel(GANPreTrainedModel):
    """
    A generator and its discriminator, saved and loaded together (`AutoModel.from_pretrained` returns this class).

    Calling the model generates images; `model.discriminator(images)` scores them.

    Example:
    ```python
    >>> import torch, hf_genxfer
    >>> from transformers import AutoModel
    >>> model = AutoModel.from_pretrained("path/to/run")  # a folder written by `genxfer train`
    >>> latents = model.generator.sample_latents(4, generator=torch.Generator().manual_seed(0))
    >>> images = model(latents).images  # (4, C, H, W) in [-1, 1]
    ```
    """

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.generator = GANGenerator(config)
        self.discriminator = GANDiscriminator(config)
        self.post_init()

    def forward(
        self,
        latents: torch.Tensor,
        class_labels: torch.LongTensor | None = None,
        task: str | list[str] | torch.LongTensor | None = None,
        return_dict: bool = True,
    ) -> GANGeneratorOutput | tuple:
        return self.generator(latents, class_labels=class_labels, task=task, return_dict=return_dict)

    def start_task_from(self, new_task: str, existing: str) -> None:
        """Adding a task: its generator and discriminator heads start as copies of an existing task's."""
        names = self.config.task_names or []
        for task in (existing, new_task):
            if task not in names:
                raise ValueError(
                    f"multitask.init_new_tasks_from names {task!r}, which is not one of the model's tasks {names}."
                )
        for part in (self.generator, self.discriminator):
            if hasattr(part, "task_heads"):
                part.task_heads[new_task].load_state_dict(part.task_heads[existing].state_dict())
