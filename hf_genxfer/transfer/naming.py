"""Name patterns for choosing parameters, and the named parts (encoder, decoder layers, GAN blocks) of each family.

Every strategy picks parameters with the same convention: `fnmatch`-style globs matched against full parameter
names, case-sensitively; `*` matches any run of characters, dots included. So "only the encoder" of a BART-backed
`Seq2SeqModel` is `["backbone.model.encoder.*"]` and "only the generator's first block" is
`["generator.mapping*", "generator.blocks.0.*"]`. [`encoder_patterns`], [`decoder_patterns`] and
[`generator_patterns`] write these for you, whatever the backbone's naming.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from torch import nn


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether `name` matches any of the glob `patterns`."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def check_patterns(patterns: str | Iterable[str] | None, argument: str) -> list[str] | None:
    """`patterns` as a list of non-empty strings (a single string becomes a one-item list); `None` stays `None`."""
    if patterns is None:
        return None
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns)
    if not patterns or not all(isinstance(pattern, str) and pattern for pattern in patterns):
        raise ValueError(f"`{argument}` must be a non-empty list of glob patterns, got {patterns!r}.")
    return patterns


def unused_patterns(patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """The patterns that match none of `names`."""
    names = list(names)
    return [pattern for pattern in patterns if not any(fnmatchcase(name, pattern) for name in names)]


def module_patterns(*module_names: str) -> list[str]:
    """Globs for every parameter under the given modules: `module_patterns("generator.blocks.0")` ->
    `["generator.blocks.0.*"]`."""
    return [f"{name}.*" for name in module_names]


def module_name(model: nn.Module, module: nn.Module) -> str:
    """The dotted path of `module` inside `model` (`""` for the model itself)."""
    for name, candidate in model.named_modules(remove_duplicate=False):
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(model).__name__}.")


# --------------------------------------------------------------------------------------------------------------------
# Seq2Seq: any transformers encoder-decoder (BART: model.encoder.layers, T5: encoder.block), wrapped or bare.


def is_encoder_decoder(model: nn.Module) -> bool:
    """Whether `model` is a Seq2SeqModel or a transformers encoder-decoder (its config says so)."""
    config = getattr(model, "config", None)
    return bool(getattr(config, "is_encoder_decoder", False)) and hasattr(model, "get_encoder")


def _check_encoder_decoder(model: nn.Module) -> None:
    if not is_encoder_decoder(model):
        raise TypeError(
            f"Expected a Seq2SeqModel or a transformers encoder-decoder (BART, T5, ...), got {type(model).__name__}."
        )


def layer_stack(stack: nn.Module) -> tuple[str, nn.ModuleList]:
    """The attribute name and list of transformer layers of an encoder or decoder (`layers` for BART, `block` for T5)."""
    for attribute in ("layers", "block", "layer"):
        layers = getattr(stack, attribute, None)
        if isinstance(layers, nn.ModuleList):
            return attribute, layers
    raise TypeError(f"Cannot find the list of layers of {type(stack).__name__} (looked for `layers` and `block`).")


def encoder_patterns(model: nn.Module) -> list[str]:
    """Globs for every parameter of the encoder of a Seq2Seq model (tied token embeddings match through their alias
    `...encoder.embed_tokens.weight`)."""
    _check_encoder_decoder(model)
    return module_patterns(module_name(model, model.get_encoder()))


def decoder_patterns(model: nn.Module) -> list[str]:
    """Globs for every parameter of the decoder of a Seq2Seq model."""
    _check_encoder_decoder(model)
    return module_patterns(module_name(model, model.get_decoder()))


# --------------------------------------------------------------------------------------------------------------------
# GAN


def generator_patterns(model: nn.Module, num_blocks: int | None = None) -> list[str]:
    """Globs for the generator's input side: its mapping layer (and class embedding when conditional), then its first
    `num_blocks` blocks (from 4x4 up); `None` for the whole generator.

    `model` is a `GANModel` (names start with `generator.`) or a bare `GANGenerator`.
    """
    generator = getattr(model, "generator", model)
    if not hasattr(generator, "blocks") or not hasattr(generator, "mapping"):
        raise TypeError(f"Expected a GANModel or GANGenerator, got {type(model).__name__}.")
    prefix = "" if generator is model else module_name(model, generator) + "."
    if num_blocks is None:
        return [f"{prefix}*"]
    if not isinstance(num_blocks, int) or not 0 <= num_blocks <= len(generator.blocks):
        raise ValueError(
            f"`num_blocks` must be an integer from 0 to {len(generator.blocks)} (the generator's blocks), "
            f"got {num_blocks!r}."
        )
    patterns = [f"{prefix}mapping.*"]
    if getattr(generator, "class_embedding", None) is not None:
        patterns.insert(0, f"{prefix}class_embedding.*")
    return patterns + [f"{prefix}blocks.{i}.*" for i in range(num_blocks)]


__all__ = [
    "decoder_patterns",
    "encoder_patterns",
    "generator_patterns",
    "matches",
    "module_patterns",
]
