"""Freezing and layer-wise learning rates: choose what a transfer run trains, and how fast each depth moves.

Everything here only sets `requires_grad` or builds optimizer parameter groups; the training loop builds its
optimizers from the parameters that still require gradients (or from the groups of [`layerwise_learning_rates`]).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from .naming import check_patterns, is_encoder_decoder, layer_stack, matches, unused_patterns


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """
    `(trainable, total)` numbers of parameter elements, tied parameters counted once: transformers'
    `num_parameters` for its models, the same count for any other module (a PEFT wrapper, a bare layer).
    """
    if hasattr(model, "num_parameters"):
        return model.num_parameters(only_trainable=True), model.num_parameters()
    trainable = total = 0
    for parameter in model.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total


def _freeze_parameters(model: nn.Module, chosen: Iterable[nn.Parameter]) -> list[str]:
    """Freeze `chosen` parameters of `model`; their names (first name of tied ones) in the model's order."""
    chosen_ids = {id(parameter) for parameter in chosen}
    names = []
    for name, parameter in model.named_parameters():
        if id(parameter) in chosen_ids:
            parameter.requires_grad_(False)
            names.append(name)
    return names


def freeze(model: nn.Module, patterns: str | Iterable[str]) -> list[str]:
    """Set `requires_grad=False` on every parameter whose name matches one of the glob `patterns`.

    A tied parameter is frozen when any of its names matches (freezing `backbone.lm_head.*` freezes the shared
    embeddings it is tied to). Patterns follow `hf_genxfer.transfer.naming`: `fnmatch` globs on full names.

    Returns:
        The names of the frozen parameters (first name of tied ones), in the model's order.

    Example:
    ```python
    >>> freeze(model, ["generator.mapping.*", "generator.blocks.0.*"])
    ['generator.mapping.weight', 'generator.mapping.bias', 'generator.blocks.0.convs.0.weight', ...]
    ```
    """
    patterns = check_patterns(patterns, "patterns")
    named = list(model.named_parameters(remove_duplicate=False))
    unused = unused_patterns(patterns, [name for name, _ in named])
    if unused:
        example = named[0][0] if named else "(the model has no parameters)"
        raise ValueError(
            f"Pattern(s) {', '.join(map(repr, unused))} match no parameter of {type(model).__name__} "
            f"(names look like {example!r})."
        )
    return _freeze_parameters(model, [parameter for name, parameter in named if matches(name, patterns)])


# --------------------------------------------------------------------------------------------------------------------
# GAN


def _discriminator(model: nn.Module) -> tuple[nn.Module, str]:
    discriminator = getattr(model, "discriminator", model)
    if not all(hasattr(discriminator, name) for name in ("from_image", "blocks", "final_block", "head")):
        raise TypeError(f"Expected a GANModel or GANDiscriminator, got {type(model).__name__}.")
    return discriminator, "" if discriminator is model else "discriminator."


def freeze_discriminator_blocks(model: nn.Module, num_blocks: int) -> list[str]:
    """FreezeD (Mo et al., 2020): freeze the discriminator's `from_image` layer and its lowest `num_blocks` blocks.

    Blocks count from the image: `blocks.0` (full resolution) up to `blocks.{n-1}`, then `final_block` (4x4) as
    block `n + 1`. The head (and the class projection of a conditional GAN) always stays trainable.

    Args:
        model: a `GANModel` (returned names start with `discriminator.`) or a `GANDiscriminator`.
        num_blocks: from 0 (only `from_image`) to the number of blocks plus one (everything but the head).
    """
    discriminator, prefix = _discriminator(model)
    count = len(discriminator.blocks)
    if not isinstance(num_blocks, int) or isinstance(num_blocks, bool) or not 0 <= num_blocks <= count + 1:
        raise ValueError(
            f"`num_blocks` must be an integer from 0 to {count + 1} (this discriminator has {count} "
            f"downsampling block(s) plus its final block), got {num_blocks!r}."
        )
    modules = [discriminator.from_image, *discriminator.blocks[:num_blocks]]
    if num_blocks == count + 1:
        modules.append(discriminator.final_block)
    names = _freeze_parameters(discriminator, [p for module in modules for p in module.parameters()])
    return [prefix + name for name in names]


def freeze_generator_blocks(model: nn.Module, num_blocks: int) -> list[str]:
    """Style-only adaptation: freeze what carries a generator's content, and train what carries its style.

    Frozen: the class (and task) embeddings, the input mapping and the style mapping network (which character to
    draw, and the latent's place among the source's samples) and the lowest `num_blocks` blocks, counted from the
    4x4 one (the coarse layout). The later blocks with their modulations and the output layer, where a font's
    strokes and serifs are drawn, stay trainable. With a multi-task generator's task heads, only the shared part
    is counted.

    Args:
        model: a `GANModel` (returned names start with `generator.`) or a `GANGenerator`.
        num_blocks: from 0 (only the embeddings and mappings) to the number of shared blocks.
    """
    generator = getattr(model, "generator", model)
    if not all(hasattr(generator, name) for name in ("mapping", "blocks")):
        raise TypeError(f"Expected a GANModel or GANGenerator, got {type(model).__name__}.")
    prefix = "" if generator is model else "generator."
    count = len(generator.blocks)
    if not isinstance(num_blocks, int) or isinstance(num_blocks, bool) or not 0 <= num_blocks <= count:
        raise ValueError(
            f"`num_blocks` must be an integer from 0 to {count} (this generator has {count} blocks), got {num_blocks!r}."
        )
    names = ("class_embedding", "task_embedding", "mapping", "style_mapping")
    modules = [getattr(generator, name) for name in names if hasattr(generator, name)]
    modules += list(generator.blocks[:num_blocks])
    names = _freeze_parameters(generator, [p for module in modules for p in module.parameters()])
    return [prefix + name for name in names]


# --------------------------------------------------------------------------------------------------------------------
# Seq2Seq (BART, T5 and other transformers encoder-decoders, wrapped in a Seq2SeqModel or bare)


def _check_encoder_decoder(model: nn.Module) -> None:
    if not is_encoder_decoder(model):
        raise TypeError(
            f"Expected a Seq2SeqModel or a transformers encoder-decoder (BART, T5, ...), got {type(model).__name__}."
        )


def _token_embeddings(model: nn.Module) -> list[nn.Parameter]:
    return list(model.get_input_embeddings().parameters())


def freeze_encoder(model: nn.Module, include_token_embeddings: bool = True) -> list[str]:
    """Freeze the encoder of a Seq2Seq model.

    The token embeddings are usually shared by the encoder, the decoder and the output layer: with
    `include_token_embeddings=True` they freeze with the encoder (and so does a tied `lm_head`); pass `False` to keep
    them trainable.
    """
    _check_encoder_decoder(model)
    kept = {id(parameter) for parameter in _token_embeddings(model)} if not include_token_embeddings else set()
    return _freeze_parameters(model, [p for p in model.get_encoder().parameters() if id(p) not in kept])


def _embedding_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Token embeddings plus the embeddings that sit before the layers (e.g. BART's learned positions)."""
    parameters = _token_embeddings(model)
    for stack in (model.get_encoder(), model.get_decoder()):
        _, layers = layer_stack(stack)
        in_layers = {id(parameter) for parameter in layers.parameters()}
        for module in stack.modules():
            if isinstance(module, nn.Embedding):
                parameters += [p for p in module.parameters() if id(p) not in in_layers]
    return parameters


def freeze_embeddings(model: nn.Module) -> list[str]:
    """Freeze the embeddings of a Seq2Seq model: token embeddings (a tied `lm_head` with them) and the position
    embeddings outside the layers (BART's learned positions; T5's relative attention biases live in the layers)."""
    _check_encoder_decoder(model)
    return _freeze_parameters(model, _embedding_parameters(model))


def freeze_decoder_layers(model: nn.Module, num_layers: int) -> list[str]:
    """Freeze the lowest `num_layers` decoder layers (those nearest the decoder's embeddings) of a Seq2Seq model."""
    _check_encoder_decoder(model)
    _, layers = layer_stack(model.get_decoder())
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or not 0 <= num_layers <= len(layers):
        raise ValueError(
            f"`num_layers` must be an integer from 0 to {len(layers)} (the decoder's layers), got {num_layers!r}."
        )
    return _freeze_parameters(model, [p for layer in layers[:num_layers] for p in layer.parameters()])


# --------------------------------------------------------------------------------------------------------------------
# Layer-wise learning rates


def _seq2seq_depths(model: nn.Module) -> dict[int, int]:
    encoder, decoder = model.get_encoder(), model.get_decoder()
    _, encoder_layers = layer_stack(encoder)
    _, decoder_layers = layer_stack(decoder)
    n_decoder, n_encoder = len(decoder_layers), len(encoder_layers)
    bottom = n_decoder + n_encoder + 1
    depths = {id(p): bottom for p in _embedding_parameters(model)}
    for stack in (encoder, decoder):
        for name, parameter in stack.named_parameters():
            if "embed" in name:  # e.g. BART's layernorm_embedding: part of the embedding step
                depths.setdefault(id(parameter), bottom)
    for index, layer in enumerate(decoder_layers):
        for parameter in layer.parameters():
            depths.setdefault(id(parameter), n_decoder - index)
    for index, layer in enumerate(encoder_layers):
        for parameter in layer.parameters():
            depths.setdefault(id(parameter), n_decoder + n_encoder - index)
    for parameter in encoder.parameters():  # the encoder's final layer norm sits with its top layer
        depths.setdefault(id(parameter), n_decoder + 1)
    return depths  # anything else (lm_head, the decoder's final norm) is the output: depth 0


def _generator_depths(generator: nn.Module) -> dict[int, int]:
    count = len(generator.blocks)
    depths = {id(p): count - index for index, block in enumerate(generator.blocks) for p in block.parameters()}
    output = {id(p) for p in generator.to_image.parameters()}
    for parameter in generator.parameters():
        if id(parameter) not in output:
            depths.setdefault(id(parameter), count + 1)  # mapping and class embedding
    return depths  # to_image: depth 0


def _discriminator_depths(discriminator: nn.Module) -> dict[int, int]:
    count = len(discriminator.blocks)
    depths = {id(p): 1 for p in discriminator.final_block.parameters()}
    for index, block in enumerate(discriminator.blocks):
        depths.update({id(p): count + 1 - index for p in block.parameters()})
    depths.update({id(p): count + 2 for p in discriminator.from_image.parameters()})
    return depths  # head and class projection: depth 0


def layerwise_learning_rates(model: nn.Module, base_lr: float, decay: float, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups in which a parameter `depth` layers below the output gets `base_lr * decay**depth`.

    Depth per family (0 = the output):
    - Seq2Seq: output layer, `final_logits_bias` and the decoder's final norm 0; decoder layer `i` of `D` is
      `D - i`; the encoder sits below the decoder, so encoder layer `j` of `E` is `D + E - j` (its final norm goes
      with its top layer); token and position embeddings (tied output layer included) are deepest, `D + E + 1`.
    - GAN generator: `to_image` 0, block `i` of `B` is `B - i`, the mapping (and class embedding) `B + 1`.
    - GAN discriminator: head and class projection 0, `final_block` 1, `blocks.i` of `B` is `B + 1 - i`,
      `from_image` `B + 2`.
    A `GANModel` trains its two networks with two optimizers: call this once on `model.generator` and once on
    `model.discriminator`. Frozen parameters are left out.

    Args:
        base_lr: learning rate at the output (depth 0).
        decay: factor per layer of depth, in (0, 1].
        weight_decay: given to weights of 2 or more dimensions; biases, norms and other vectors get 0.

    Returns:
        A list of `{"params", "param_names", "lr", "weight_decay", "depth"}` dicts, shallowest first, ready for
        `torch.optim.AdamW(groups)`.
    """
    if not base_lr > 0:
        raise ValueError(f"`base_lr` must be positive, got {base_lr!r}.")
    if not 0 < decay <= 1:
        raise ValueError(f"`decay` must be in (0, 1], got {decay!r}.")
    if hasattr(model, "generator") and hasattr(model, "discriminator"):
        raise TypeError(
            "A GANModel trains its generator and discriminator with separate optimizers: call "
            "layerwise_learning_rates(model.generator, ...) and layerwise_learning_rates(model.discriminator, ...)."
        )
    if is_encoder_decoder(model):
        depths = _seq2seq_depths(model)
    elif hasattr(model, "to_image") and hasattr(model, "blocks"):
        depths = _generator_depths(model)
    elif hasattr(model, "from_image") and hasattr(model, "final_block"):
        depths = _discriminator_depths(model)
    else:
        raise TypeError(
            f"Expected a Seq2SeqModel, a transformers encoder-decoder, a GANGenerator or a GANDiscriminator, "
            f"got {type(model).__name__}."
        )
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        depth = depths.get(id(parameter), 0)
        decayed = weight_decay > 0 and parameter.dim() >= 2
        group = groups.setdefault(
            (depth, decayed),
            {
                "params": [],
                "param_names": [],
                "lr": base_lr * decay**depth,
                "weight_decay": weight_decay if decayed else 0.0,
                "depth": depth,
            },
        )
        group["params"].append(parameter)
        group["param_names"].append(name)
    return [groups[key] for key in sorted(groups)]


__all__ = [
    "count_parameters",
    "freeze",
    "freeze_decoder_layers",
    "freeze_discriminator_blocks",
    "freeze_embeddings",
    "freeze_encoder",
    "layerwise_learning_rates",
]
