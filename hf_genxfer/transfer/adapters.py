"""LoRA adapters (PEFT) for the GAN generator and Seq2Seq backbones: pick the layers, inject, and keep GANs trainable.

[`lora_config_for`] picks every Linear, Conv2d and plain Embedding of the chosen part that LoRA adapts exactly, and
[`apply_lora`] wraps the model in a `PeftModel`. The injection happens in place, so `model.generator` and
`model.discriminator` (or `peft_model.base_model.model.generator`) stay the very modules the training loop prepares
and calls. Everything else is PEFT's own API on the returned model: `save_pretrained(folder)` writes only
`adapter_config.json` + `adapter_model.safetensors`, `PeftModel.from_pretrained(base_model, folder)` loads them back,
`load_adapter` / `set_adapter` switch between named adapters (one per target domain), and `merge_and_unload()` folds
the active adapter into the base weights. PEFT saves the adapter named "default" at the folder's root and any other
under `folder/<adapter_name>/`.

What LoRA does not adapt, and why:
- Spectral-normed layers (every layer of the GAN discriminator). PEFT wraps them without complaint, but the adapter
  runs outside the normalisation (the discriminator's Lipschitz bound no longer holds) and `merge_and_unload` adds
  the update to a weight that spectral norm recomputes from `parametrizations.weight.original`, so the merge is
  silently lost. Train the discriminator fully next to a generator adapter, or freeze its lower blocks with
  `freeze_discriminator_blocks`.
- Layers whose weight is tied to another module (BART/T5 token embeddings and `lm_head`): merging one adapter into
  the shared tensor would change every tied use, so outputs after the merge would differ.
- Embedding subclasses with their own forward (BART's learned position embeddings take positions, not tokens).
"""

from __future__ import annotations

import copy
import os

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from torch import nn
from torch.nn.utils import parametrize

from .freezing import count_parameters
from .naming import check_patterns, is_encoder_decoder, matches, unused_patterns

GAN_LORA_TARGETS = ("generator", "discriminator", "both")
SEQ2SEQ_LORA_TARGETS = ("backbone", "encoder", "decoder")
_LORA_LAYER_TYPES = (nn.Linear, nn.Conv2d, nn.Embedding)


def _is_gan(model: nn.Module) -> bool:
    return hasattr(model, "generator") and hasattr(model, "discriminator")


def _base_model(model: nn.Module) -> nn.Module:
    return model.get_base_model() if isinstance(model, PeftModel) else model


def _candidate_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """`(name, layer)` for every module, seen through existing LoRA wrappers (their name, their base layer)."""
    layers = []
    for name, module in model.named_modules(remove_duplicate=False):
        parts = name.split(".")
        if "base_layer" in parts or any(part.startswith("lora_") for part in parts):
            continue  # inside a LoRA wrapper: the wrapper itself stands for its base layer
        layers.append((name, module.get_base_layer() if hasattr(module, "get_base_layer") else module))
    return layers


def _unsupported_reason(layer: nn.Module, weight_users: dict[int, list[str]], name: str) -> str | None:
    if parametrize.is_parametrized(layer):
        return (
            "spectral-normed (parametrized): the adapter would run outside the normalisation and merge_and_unload "
            "would silently drop it"
        )
    weight = layer.weight
    others = [other for other in weight_users.get(id(weight), []) if other != name]
    if others:
        return f"weight tied to {others[0]}: merging would change every tied use"
    if isinstance(layer, nn.Embedding) and type(layer).forward is not nn.Embedding.forward:
        return f"{type(layer).__name__} has its own forward (not a plain token lookup)"
    return None


def find_lora_targets(
    model: nn.Module, target: str | None = None, modules: list[str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The layers LoRA will adapt in `target`, and the Linear/Conv2d/Embedding layers left out with the reason.

    Args:
        model: a `GANModel` or a `Seq2SeqModel` (or a `PeftModel` around one, to add another adapter).
        target: for a GAN `"generator"` (default), `"discriminator"` or `"both"`; for a Seq2Seq model `"backbone"`
            (default), `"encoder"` or `"decoder"`.
        modules: glob patterns on module names to narrow the choice (e.g. `["*.q_proj", "*.v_proj"]`).

    Returns:
        `(names, skipped)`: the module names (relative to the base model) for `LoraConfig.target_modules`, and
        `{name: reason}` for the layers of `target` that LoRA cannot adapt exactly.
    """
    base = _base_model(model)
    if _is_gan(base):
        target = target or "generator"
        allowed = GAN_LORA_TARGETS
        parts = {
            "generator": ["generator"],
            "discriminator": ["discriminator"],
            "both": ["generator", "discriminator"],
        }
    elif is_encoder_decoder(base):
        target = target or "backbone"
        allowed = SEQ2SEQ_LORA_TARGETS
        encoder = next(name for name, module in base.named_modules() if module is base.get_encoder())
        decoder = next(name for name, module in base.named_modules() if module is base.get_decoder())
        parts = {"backbone": [""], "encoder": [encoder], "decoder": [decoder]}
    else:
        raise TypeError(f"Expected a GANModel or a Seq2SeqModel, got {type(base).__name__}.")
    if target not in allowed:
        raise ValueError(f"`target` for a {type(base).__name__} must be one of {', '.join(allowed)}, got {target!r}.")
    modules = check_patterns(modules, "modules")

    layers = _candidate_layers(base)
    weight_users: dict[int, list[str]] = {}
    for name, layer in layers:
        if isinstance(layer, _LORA_LAYER_TYPES):
            weight_users.setdefault(id(layer.weight), []).append(name)

    chosen, skipped = [], {}
    for part in parts[target]:
        in_part = [
            (name, layer)
            for name, layer in layers
            if isinstance(layer, _LORA_LAYER_TYPES) and (not part or name.startswith(part + "."))
        ]
        if modules is not None:
            in_part = [(name, layer) for name, layer in in_part if matches(name, modules)]
        part_chosen = []
        for name, layer in in_part:
            reason = _unsupported_reason(layer, weight_users, name)
            if reason is None:
                part_chosen.append(name)
            else:
                skipped[name] = reason
        if not part_chosen:
            what = f"the {part}" if part else f"this {type(base).__name__}"
            reasons = sorted(set(skipped.values())) or ["no Linear, Conv2d or Embedding layer matches `modules`"]
            hint = (
                " Use target='generator', and train the discriminator fully or freeze its lower blocks with "
                "freeze_discriminator_blocks."
                if part == "discriminator"
                else ""
            )
            raise ValueError(f"LoRA cannot adapt any layer of {what}: {'; '.join(reasons)}.{hint}")
        chosen += part_chosen
    if modules is not None:
        unused = unused_patterns(modules, chosen + list(skipped))
        if unused:
            raise ValueError(f"`modules` pattern(s) {', '.join(map(repr, unused))} match no layer of the {target}.")
    return chosen, skipped


def lora_config_for(
    model: nn.Module,
    target: str | None = None,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    modules: list[str] | None = None,
    modules_to_save: list[str] | None = None,
    use_dora: bool = False,
) -> LoraConfig:
    """A `LoraConfig` adapting every layer of `target` that LoRA adapts exactly (see [`find_lora_targets`]).

    Seq2Seq models get `task_type=SEQ_2_SEQ_LM` (so `generate` and `AutoPeftModelForSeq2SeqLM` work); GANs get no
    task type (a plain `PeftModel`, whose forward passes `latents` and `class_labels` through).

    `modules_to_save` (globs on module names) picks layers that train in full next to the adapter and are saved
    with it (PEFT's `modules_to_save`), e.g. `["generator.class_embedding"]` for a GAN learning new classes: a
    rank-r update cannot give new classes independent embedding rows. Those layers get no LoRA of their own.
    `use_dora` makes it PEFT's DoRA (a trained magnitude per output channel beside the low-rank direction update).

    Example:
    ```python
    >>> config = lora_config_for(gan, target="generator", r=4)
    >>> peft_model = apply_lora(gan, config)
    >>> peft_model.save_pretrained("runs/lora-letters")  # adapter_config.json + adapter_model.safetensors
    ```
    """
    names, _ = find_lora_targets(model, target, modules)
    saved = _modules_to_save(_base_model(model), modules_to_save)
    names = [name for name in names if name not in saved]
    if not names:
        raise ValueError("`modules_to_save` covers every layer LoRA would adapt: leave some to the adapter.")
    task_type = TaskType.SEQ_2_SEQ_LM if is_encoder_decoder(_base_model(model)) else None
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=names,
        modules_to_save=saved or None,
        task_type=task_type,
        use_dora=use_dora,
    )


def loraplus_fast_parameters(module: nn.Module) -> set[int]:
    """The ids of `module`'s trainable parameters that LoRA+ trains at the higher rate: every adapter's B matrix.

    LoRA+ (Hayou et al. 2024) gives B, the factor on the output side, a larger rate than A. PEFT's
    `create_loraplus_optimizer` builds a whole optimizer from one model, while the training loops build their own
    parameter groups (a GAN's generator and discriminator apart, layer-wise rates, embedding rows), so the loops
    split their groups by this set instead. It differs from PEFT's sorting in two ways, both for consistency across
    layer types: DoRA magnitudes and biases keep the base rate (PEFT speeds up 1-D tensors only, i.e. the magnitudes
    of Linear layers but not those of convolutions), and an adapted embedding's B (`lora_embedding_B`, also the
    output side) is fast like the others (PEFT gives embeddings a fixed 1e-6 by default).
    """
    return {
        id(p)
        for name, p in module.named_parameters()
        if p.requires_grad and any(part in ("lora_B", "lora_embedding_B") for part in name.split("."))
    }


def _modules_to_save(base: nn.Module, patterns: list[str] | None) -> list[str]:
    """The module names matching `patterns` (whole modules, not their children), each pattern matching one at least."""
    patterns = check_patterns(patterns, "modules_to_save")
    if patterns is None:
        return []
    names = [name for name, _ in _candidate_layers(base) if name]
    chosen = [name for name in names if matches(name, patterns)]
    chosen = [name for name in chosen if not any(name.startswith(other + ".") for other in chosen)]
    unused = unused_patterns(patterns, chosen)
    if unused:
        raise ValueError(f"`modules_to_save` pattern(s) {', '.join(map(repr, unused))} match no module of the model.")
    return chosen


def _untouched_parts_trainability(base: nn.Module, target_modules) -> dict[int, bool]:
    """`requires_grad` of the parameters in top-level parts no adapter targets (the discriminator of a GAN)."""
    targets = list(target_modules) if not isinstance(target_modules, str) else [target_modules]
    states = {}
    for child_name, child in base.named_children():
        if not any(name == child_name or name.startswith(child_name + ".") for name in targets):
            states.update({id(p): p.requires_grad for p in child.parameters()})
    return states


def _restore_trainability(base: nn.Module, states: dict[int, bool]) -> None:
    for parameter in base.parameters():
        if id(parameter) in states:
            parameter.requires_grad_(states[id(parameter)])


def apply_lora(model: nn.Module, config: LoraConfig, adapter_name: str = "default") -> PeftModel:
    """Inject the LoRA adapter `adapter_name` and return the `PeftModel` (a new one, or `model` when it already is).

    The base model is changed in place: its targeted layers become LoRA layers, so `model.generator` and
    `model.discriminator` keep working for the training loop. PEFT freezes every base parameter; parts of the
    model that no adapter touches (a GAN's discriminator under a generator adapter) keep their `requires_grad`,
    since the discriminator still has to train. The new adapter becomes the active (trained) one.

    Example:
    ```python
    >>> peft_model = apply_lora(gan, lora_config_for(gan))  # adapter "default"
    >>> peft_model = apply_lora(peft_model, lora_config_for(peft_model), adapter_name="letters")  # a second domain
    >>> peft_model.set_adapter("default")  # switch back
    ```
    """
    base = _base_model(model)
    targets = set(config.target_modules)
    if isinstance(model, PeftModel):
        for other in model.peft_config.values():
            targets |= set(getattr(other, "target_modules", None) or [])
    states = _untouched_parts_trainability(base, targets)
    if isinstance(model, PeftModel):
        model.add_adapter(adapter_name, config)
        model.set_adapter(adapter_name)
        peft_model = model
    else:
        peft_model = get_peft_model(model, config, adapter_name=adapter_name)
    _restore_trainability(base, states)
    return peft_model


def load_lora(
    model: nn.Module, folder: str | os.PathLike, adapter_name: str = "default", is_trainable: bool = False
) -> PeftModel:
    """Load an adapter saved by `save_pretrained` onto `model` (a base model, or a `PeftModel` to add a domain).

    With `is_trainable=True` the loaded adapter becomes the active, trained one and, as in [`apply_lora`], parts no
    adapter touches keep their `requires_grad`.
    """
    base = _base_model(model)
    states = _untouched_parts_trainability(base, _saved_targets(folder))
    if isinstance(model, PeftModel):
        model.load_adapter(folder, adapter_name=adapter_name, is_trainable=is_trainable)
        peft_model = model
        if is_trainable:
            peft_model.set_adapter(adapter_name)
    else:
        peft_model = PeftModel.from_pretrained(model, folder, adapter_name=adapter_name, is_trainable=is_trainable)
    if is_trainable:
        _restore_trainability(base, states)
    return peft_model


def _saved_targets(folder: str | os.PathLike) -> list[str]:
    from peft import PeftConfig

    return list(PeftConfig.from_pretrained(folder).target_modules or [])


def trainable_fraction(model: nn.Module) -> float:
    """Fraction of parameter elements that require gradients (tied parameters counted once)."""
    trainable, total = count_parameters(model)
    return trainable / total if total else 0.0


__all__ = [
    "GAN_LORA_TARGETS",
    "SEQ2SEQ_LORA_TARGETS",
    "apply_lora",
    "find_lora_targets",
    "load_lora",
    "lora_config_for",
    "trainable_fraction",
]


def merged_copy(peft_model: PeftModel) -> nn.Module:
    """A new base model holding the active adapters merged into its weights; `peft_model` is left untouched.

    `merge_and_unload` edits the model in place (and a deep copy of a `PeftModel` still shares its base layers), so
    saving a merged model mid-run would strip the adapters from the model being trained. This builds the merged
    weights from each LoRA layer's `get_delta_weight` instead and loads them into a fresh instance of the base class.
    """
    from peft.tuners.lora import LoraLayer
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
    from peft.utils import ModulesToSaveWrapper

    base = _base_model(peft_model)
    state = {}
    lora_prefixes = []
    for name, module in base.named_modules():
        if isinstance(module, ModulesToSaveWrapper):  # a layer trained in full next to the adapter
            lora_prefixes.append(name + ".")
            active = module.active_adapters[0] if module.active_adapters else None
            source = module.modules_to_save[active] if active in module.modules_to_save else module.original_module
            state.update({f"{name}.{key}": value.detach().clone() for key, value in source.state_dict().items()})
            continue
        if isinstance(module, TrainableTokensLayer):  # rows of new tokens trained next to LoRA
            # PEFT wraps the embedding (`shared`) in a module whose `token_adapter` this is: the merged weight is
            # the embedding's own.
            owner = name.removesuffix(".token_adapter")
            lora_prefixes.append(owner + ".")
            state[f"{owner}.weight"] = module.get_merged_weights(module.active_adapters).detach().clone()
            continue
        if isinstance(module, LoraLayer):
            lora_prefixes.append(name + ".")
            layer = module.get_base_layer()
            weight = layer.weight.detach().clone()
            for adapter in module.active_adapters:
                if adapter in module.lora_A or adapter in getattr(module, "lora_embedding_A", {}):
                    weight += module.get_delta_weight(adapter).to(weight.dtype)
            state[f"{name}.weight"] = weight
            if getattr(layer, "bias", None) is not None:
                state[f"{name}.bias"] = layer.bias.detach().clone()
    for name, tensor in base.state_dict().items():
        if not any(name.startswith(prefix) for prefix in lora_prefixes):
            state[name] = tensor.detach().clone()
    merged = type(base)(copy.deepcopy(base.config))
    missing, unexpected = merged.load_state_dict(state, strict=False)
    if unexpected or [key for key in missing if key not in _tied_names(merged)]:
        raise RuntimeError(f"Merging the adapters left weights unmatched: missing {missing}, unexpected {unexpected}.")
    return merged.to(next(base.parameters()).device)


def _tied_names(model: nn.Module) -> set[str]:
    """Names under which load_state_dict may legitimately find nothing: tied aliases of another tensor."""
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    return set(tied)
