"""Configuration of the hf_genxfer GAN: architecture only, validated where it is built."""

import math

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

ADVERSARIAL_LOSSES = ("non_saturating", "hinge")


def _check_int(name: str, value, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"GANConfig.{name} must be an integer from {low} to {high}, got {value!r}.")


@strict
class GANConfig(PreTrainedConfig):
    r"""
    Configuration of a [`GANModel`]: a generator built from upsample + Conv2d blocks (so PEFT LoRA reaches every layer)
    and a discriminator with spectral norm, optionally class-conditional.

    The generator starts from a 4x4 feature map and doubles the resolution `log2(image_size) - 2` times; the
    discriminator mirrors it. The width at resolution `r` is `min(max_width, base_width * image_size / r)`.

    Args:
        image_size (`int`, *optional*, defaults to 8):
            Side of the square images, a power of two from 8 to 256.
        image_channels (`int`, *optional*, defaults to 1):
            Channels of the images (1 for grey, 3 for RGB), from 1 to 4.
        latent_size (`int`, *optional*, defaults to 64):
            Size of the generator's input noise vector, from 1 to 1024.
        base_width (`int`, *optional*, defaults to 64):
            Channels of the blocks at full resolution, from 4 to 1024.
        max_width (`int`, *optional*, defaults to 256):
            Upper bound on the channels of any block, from 4 to 2048 and at least `base_width`.
        layers_per_block (`int`, *optional*, defaults to 2):
            Conv2d layers in each generator and discriminator block, from 1 to 4.
        num_classes (`int`, *optional*):
            Number of classes for a class-conditional GAN (from 2 to 10000); `None` for an unconditional one.
        class_embedding_size (`int`, *optional*, defaults to 32):
            Size of the class embedding concatenated to the generator's latent, from 1 to 1024.
        style_mapping_layers (`int`, *optional*, defaults to 0):
            Per-layer conditioning: with `k > 0`, a mapping network of `k` Linear + LeakyReLU layers turns the latent
            (with the class and task embeddings) into a style vector that modulates every generator layer (a
            per-channel scale and shift after each layer's PixelNorm: class-conditional normalisation, as in
            StyleGAN's AdaIN), so the class reaches every block and not only the input. 0 (the default) conditions
            at the input only. From 0 to 8.
        style_size (`int`, *optional*, defaults to 128):
            Size of the style vector of the mapping network (`style_mapping_layers > 0`), from 1 to 1024.
        learned_latent_affine (`bool`, *optional*, defaults to `False`):
            Whether the generator holds a learned per-dimension shift and scale of its latent (`latent_shift`,
            `latent_log_scale`, starting at the identity) applied before everything else. For few-shot transfer:
            where the latent carries the style shared by all classes (the font of a glyph GAN), moving its
            distribution restyles every class, the ones missing from the target data included.
        auxiliary_classifier (`bool`, *optional*, defaults to `False`):
            Class-conditional only: the discriminator also has a classifier head (AC-GAN, Odena et al. 2017) trained
            on the real images' classes, and the generator is trained to have its images classified as the classes
            it was asked for (weighted by the recipe's `training.auxiliary_class_weight`). With many classes (the 62
            glyphs) this teaches the generator which character to draw much faster than the projection alone.
        adversarial_loss (`str`, *optional*, defaults to `"non_saturating"`):
            The adversarial loss, one of `"non_saturating"` or `"hinge"`.
        minibatch_std (`bool`, *optional*, defaults to `True`):
            Whether the discriminator sees the batch's standard deviation (ProGAN), which discourages mode collapse.
        negative_slope (`float`, *optional*, defaults to 0.2):
            Slope of the LeakyReLU activations, from 0 to 1.
        task_names (`list[str]`, *optional*):
            Names of the tasks of a multi-task GAN (at least two, unique); `None` for a single-task GAN.
        shared_blocks (`int`, *optional*):
            Multi-task only: how many generator blocks, counted from the 4x4 one, all tasks share (with the latent
            mapping); the later blocks and the output layer are one head per task. From 0 to the number of blocks
            (`log2(image_size) - 1`); `None` (the default) shares every block: one generator conditioned on a task
            embedding. The discriminator always shares its trunk and has one output head per task.
        task_embedding_size (`int`, *optional*, defaults to 16):
            Size of the task embedding of a fully shared multi-task generator, from 1 to 1024.

    Example:
    ```python
    >>> from hf_genxfer import GANConfig, GANModel
    >>> config = GANConfig(image_size=8, image_channels=1, num_classes=10)
    >>> model = GANModel(config)
    ```
    """

    model_type = "genxfer_gan"

    image_size: int = 8
    image_channels: int = 1
    latent_size: int = 64
    base_width: int = 64
    max_width: int = 256
    layers_per_block: int = 2
    num_classes: int | None = None
    class_embedding_size: int = 32
    style_mapping_layers: int = 0
    style_size: int = 128
    auxiliary_classifier: bool = False
    learned_latent_affine: bool = False
    adversarial_loss: str = "non_saturating"
    minibatch_std: bool = True
    negative_slope: float | int = 0.2
    task_names: list[str] | tuple[str, ...] | None = None
    shared_blocks: int | None = None
    task_embedding_size: int = 16

    def __post_init__(self, **kwargs):
        # The types are checked by `@strict` as each field is set; the ranges and the fields' agreement here.
        _check_int("image_size", self.image_size, 8, 256)
        if self.image_size & (self.image_size - 1):
            raise ValueError(f"GANConfig.image_size must be a power of two from 8 to 256, got {self.image_size!r}.")
        _check_int("image_channels", self.image_channels, 1, 4)
        _check_int("latent_size", self.latent_size, 1, 1024)
        _check_int("base_width", self.base_width, 4, 1024)
        _check_int("max_width", self.max_width, 4, 2048)
        if self.max_width < self.base_width:
            raise ValueError(
                f"GANConfig.max_width must be at least base_width ({self.base_width}), got {self.max_width!r}; "
                "raise max_width."
            )
        _check_int("layers_per_block", self.layers_per_block, 1, 4)
        if self.num_classes is not None:
            _check_int("num_classes", self.num_classes, 2, 10000)
        _check_int("class_embedding_size", self.class_embedding_size, 1, 1024)
        _check_int("style_mapping_layers", self.style_mapping_layers, 0, 8)
        _check_int("style_size", self.style_size, 1, 1024)
        if self.adversarial_loss not in ADVERSARIAL_LOSSES:
            raise ValueError(
                f"GANConfig.adversarial_loss must be one of {', '.join(ADVERSARIAL_LOSSES)}, "
                f"got {self.adversarial_loss!r}."
            )
        if not 0 <= self.negative_slope <= 1:
            raise ValueError(f"GANConfig.negative_slope must be a number from 0 to 1, got {self.negative_slope!r}.")
        self.negative_slope = float(self.negative_slope)

        if self.auxiliary_classifier and (self.num_classes is None or self.task_names is not None):
            raise ValueError(
                "GANConfig.auxiliary_classifier needs a single-task class-conditional GAN (num_classes set, no "
                "task_names): set num_classes, or drop auxiliary_classifier."
            )
        num_blocks = int(math.log2(self.image_size)) - 1
        if self.task_names is not None:
            names = self.task_names
            if len(names) < 2 or not all(names) or len(set(names)) != len(names):
                raise ValueError(
                    f"GANConfig.task_names must be a list of at least two unique non-empty names, got {names!r}."
                )
            self.task_names = list(names)
            if self.shared_blocks is not None:
                _check_int("shared_blocks", self.shared_blocks, 0, num_blocks)
        elif self.shared_blocks is not None:
            raise ValueError("GANConfig.shared_blocks needs task_names (a multi-task GAN): set both or neither.")
        _check_int("task_embedding_size", self.task_embedding_size, 1, 1024)
        super().__post_init__(**kwargs)

    @property
    def is_multitask(self) -> bool:
        return self.task_names is not None

    @property
    def num_shared_blocks(self) -> int:
        """Generator blocks shared by all tasks (all of them for a single-task or fully shared GAN)."""
        if self.task_names is None or self.shared_blocks is None:
            return len(self.block_widths)
        return self.shared_blocks

    @property
    def task_conditioned(self) -> bool:
        """A fully shared multi-task generator tells tasks apart by a task embedding."""
        return self.task_names is not None and self.shared_blocks is None

    @property
    def num_upsamplings(self) -> int:
        """How many times the generator doubles its 4x4 starting resolution."""
        return int(math.log2(self.image_size)) - 2

    @property
    def block_widths(self) -> list[int]:
        """Channels of the generator blocks from 4x4 up to full resolution (the discriminator uses them reversed)."""
        n = self.num_upsamplings
        return [min(self.max_width, self.base_width * 2 ** (n - i)) for i in range(n + 1)]
