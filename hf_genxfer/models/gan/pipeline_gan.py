"""A diffusers pipeline that samples images from an hf_genxfer GAN generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

from .modeling_gan import GANGenerator


@dataclass
class GANPipelineOutput(ImagePipelineOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The samples: PIL images, a numpy array (B, H, W, C) in [0, 1], or a tensor (B, C, H, W) in [0, 1].
        class_labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            The class of each sample for a class-conditional generator, else `None`.
    """

    class_labels: torch.LongTensor | None = None


class GANPipeline(DiffusionPipeline):
    r"""
    Samples images from a GAN generator in one forward pass.

    Parameters:
        generator_model ([`GANGenerator`]):
            The generator (the EMA weights when the run kept an EMA), saved in the `generator_model/` subfolder.

    Example:
    ```python
    >>> import torch
    >>> from hf_genxfer import GANPipeline
    >>> pipe = GANPipeline.from_pretrained("path/to/run")  # a folder written by `genxfer train`
    >>> out = pipe(batch_size=16, generator=torch.Generator().manual_seed(0))
    >>> out.images[0].save("sample.png")
    >>> pipe(batch_size=4, task="letters")  # a multi-task GAN samples one of its tasks by name
    ```
    """

    model_cpu_offload_seq = "generator_model"

    def __init__(self, generator_model: GANGenerator):
        super().__init__()
        self.register_modules(generator_model=generator_model)

    @classmethod
    def download(cls, pretrained_model_name: str, **kwargs) -> str:
        """
        Fetches the pipeline's files from the Hub (`from_pretrained("org/name")` calls this for a repo id) with
        huggingface_hub's `snapshot_download`. diffusers' own `download` refuses components whose library it does
        not know (`hf_genxfer...` in model_index.json) before it downloads anything.
        """
        from huggingface_hub import constants, snapshot_download

        return snapshot_download(
            pretrained_model_name,
            revision=kwargs.get("revision"),
            cache_dir=kwargs.get("cache_dir"),
            token=kwargs.get("token"),
            force_download=bool(kwargs.get("force_download", False)),
            local_files_only=bool(kwargs.get("local_files_only")) or constants.HF_HUB_OFFLINE,
            allow_patterns=["model_index.json", "generator_model/*"],
        )

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int | None = None,
        class_labels: int | list[int] | torch.LongTensor | None = None,
        task: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> GANPipelineOutput | tuple:
        r"""
        Args:
            batch_size (`int`, *optional*): how many conditioning entries ("prompts") to sample for; defaults to the
                number of `class_labels` given as a list, else 1.
            class_labels (`int`, `list[int]` or `torch.LongTensor`, *optional*): the class of each prompt for a
                class-conditional generator; one int for all, or one per prompt; drawn at random when omitted.
            task (`str` or `list[str]`, *optional*): for a multi-task GAN, the task to sample (one name for all, or
                one per prompt).
            num_images_per_prompt (`int`, defaults to 1): images per prompt, as in diffusers' text-to-image
                pipelines: `batch_size * num_images_per_prompt` images, each prompt's images next to each other.
            generator (`torch.Generator`, *optional*): makes sampling deterministic.
            latents (`torch.Tensor`, *optional*): latents of shape (batch_size * num_images_per_prompt, latent_size)
                to use instead of noise.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`): return a [`GANPipelineOutput`] instead of a tuple.
        """
        if batch_size is None:
            batch_size = len(class_labels) if isinstance(class_labels, (list, tuple, torch.Tensor)) else 1
        for name, value in (("batch_size", batch_size), ("num_images_per_prompt", num_images_per_prompt)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be one of 'pil', 'np' or 'pt', got {output_type!r}.")
        model = self.generator_model
        config = model.config
        count = batch_size * num_images_per_prompt
        # 1. sample latents (on the CPU so that a seeded CPU generator gives the same images on every device)
        if latents is None:
            latents = torch.randn(count, config.latent_size, generator=generator)
        elif latents.shape != (count, config.latent_size):
            raise ValueError(f"latents must have shape ({count}, {config.latent_size}), got {tuple(latents.shape)}.")
        # 2. pick the classes of a class-conditional generator, one per prompt, then repeat them per image
        if config.num_classes is None:
            if class_labels is not None:
                raise ValueError("This generator is unconditional: drop class_labels.")
        elif class_labels is None:
            class_labels = torch.randint(0, config.num_classes, (batch_size,), generator=generator)
        else:
            class_labels = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
            if class_labels.numel() == 1:
                class_labels = class_labels.expand(batch_size).clone()
            elif class_labels.numel() != batch_size:
                raise ValueError(f"Pass one class label or {batch_size} (one per prompt), got {class_labels.numel()}.")
            if class_labels.min() < 0 or class_labels.max() >= config.num_classes:
                raise ValueError(
                    f"class_labels must lie in [0, {config.num_classes - 1}], got {class_labels.tolist()}."
                )
        if class_labels is not None:
            class_labels = class_labels.repeat_interleave(num_images_per_prompt)  # (B,) -> (B * k,)
        if isinstance(task, (list, tuple)):
            if len(task) != batch_size:
                raise ValueError(f"Pass one task or {batch_size} (one per prompt), got {len(task)}.")
            task = [name for name in task for _ in range(num_images_per_prompt)]
        # 3. generate
        labels_on_device = None if class_labels is None else class_labels.to(self.device)
        images = model(latents.to(self.device, model.dtype), class_labels=labels_on_device, task=task).images
        # 4. convert from [-1, 1] to the requested output type
        images = (images.float() / 2 + 0.5).clamp(0, 1).cpu()
        if output_type != "pt":
            images = images.permute(0, 2, 3, 1).numpy()  # (B, C, H, W) -> (B, H, W, C)
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        if not return_dict:
            return (images, class_labels)
        return GANPipelineOutput(images=images, class_labels=class_labels)


def register_with_diffusers() -> None:
    """
    Makes `diffusers.DiffusionPipeline.from_pretrained(run_folder)` work after `import hf_genxfer`: diffusers finds a
    folder's pipeline class by the `_class_name` in its model_index.json, as an attribute of the diffusers package,
    and has no registry for pipelines outside it (transformers has `AutoModel.register`).
    """
    import diffusers

    if getattr(diffusers, GANPipeline.__name__, None) is None:
        setattr(diffusers, GANPipeline.__name__, GANPipeline)
