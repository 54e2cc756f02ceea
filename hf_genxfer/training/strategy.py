"""Applies a recipe's `transfer` section to a model: freezing, LoRA adapters, regularisers and optimizer groups.

The strategies themselves live in `hf_genxfer.transfer`; this module only reads the recipe and calls them in the
right order (transfer the weights -> freeze or add adapters -> snapshot for the regulariser -> build optimizers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..recipes import Recipe, TransferRecipe
from ..transfer import (
    EWC,
    L2SP,
    apply_lora,
    count_parameters,
    estimate_fisher,
    freeze,
    freeze_decoder_layers,
    freeze_discriminator_blocks,
    freeze_embeddings,
    freeze_encoder,
    freeze_generator_blocks,
    layerwise_learning_rates,
    lora_config_for,
    loraplus_fast_parameters,
)

# Adapter-only files of a LoRA run go in this subfolder, beside the merged model at the root: transformers'
# from_pretrained treats a folder holding adapter_config.json as an adapter to load onto its base model.
ADAPTER_FOLDER = "adapter"


def adapter_base(recipe: Recipe, report, part: str = "") -> str | None:
    """
    What a run's adapter applies to, for `adapter_config.json`'s `base_model_name_or_path` (which PEFT's
    `AutoPeftModel*` loads): `init_from`, when every tensor of the adapted `part` ("" for the whole model,
    "generator." for a GAN's generator) was copied from it unchanged; None when the run's base differs from the
    source (new layers, a new vocabulary, tensors left out), since the adapter would then not reproduce the run.
    """
    if recipe.init_from == "scratch" or report is None:
        return None
    entries = [entry for entry in report.entries if entry.name.startswith(part)]
    if not entries or any(entry.status != "copied" for entry in entries):
        return None
    return recipe.init_from


def save_adapter(peft_model, output_dir: str, base_model_name_or_path: str | None, strip_prefix: str = "") -> str:
    """
    Writes the run's LoRA adapter to `output_dir/adapter` with PEFT's `save_pretrained`, naming its base model.

    `strip_prefix` ("backbone." for a Seq2Seq run started from a plain transformers model) makes the adapter's
    module names and weight keys relative to that inner model, so that PEFT's loaders apply it to the model
    `base_model_name_or_path` names (a bare T5 has `encoder.block...`, where the wrapper has `backbone.encoder...`).
    """
    folder = os.path.join(output_dir, ADAPTER_FOLDER)
    config = peft_model.peft_config[peft_model.active_adapter]
    previous = config.base_model_name_or_path
    config.base_model_name_or_path = base_model_name_or_path
    try:
        peft_model.save_pretrained(folder)
    finally:
        config.base_model_name_or_path = previous
    if strip_prefix:
        _rebase_adapter(folder, strip_prefix)
    return folder


def _rebase_adapter(folder: str, prefix: str) -> None:
    from safetensors.torch import load_file, save_file

    config_path = os.path.join(folder, "adapter_config.json")
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    targets = config.get("target_modules")
    if isinstance(targets, list):
        config["target_modules"] = sorted(name.removeprefix(prefix) for name in targets)
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, sort_keys=True)
    weights_path = os.path.join(folder, "adapter_model.safetensors")
    keys_prefix = f"base_model.model.{prefix}"
    weights = {
        (f"base_model.model.{key[len(keys_prefix) :]}" if key.startswith(keys_prefix) else key): value
        for key, value in load_file(weights_path).items()
    }
    save_file(weights, weights_path, metadata={"format": "pt"})


def strategy_name(recipe: Recipe) -> str:
    """The strategy's name for reports and cards: the recipe's own, or one derived from its fields."""
    transfer = recipe.transfer
    if transfer.strategy:
        return transfer.strategy
    if recipe.init_from == "scratch":
        return "scratch"
    parts = []
    if transfer.lora is not None:
        parts.append("lora")
    if transfer.freeze_discriminator_blocks:
        parts.append(f"freezed{transfer.freeze_discriminator_blocks}")
    if transfer.freeze_generator_blocks is not None:
        parts.append(f"style{transfer.freeze_generator_blocks}")
    if transfer.freeze_encoder:
        parts.append("frozen_encoder")
    if transfer.freeze_embeddings:
        parts.append("frozen_embeddings")
    if transfer.freeze_decoder_layers:
        parts.append(f"frozen_decoder{transfer.freeze_decoder_layers}")
    if transfer.freeze:
        parts.append("frozen_patterns")
    if transfer.retrain_tokenizer:
        parts.append("new_vocabulary")
    if transfer.extend_vocabulary:
        parts.append("extended_vocabulary")
    if not parts or all(part in ("new_vocabulary", "extended_vocabulary") for part in parts):
        parts.insert(0, "full")
    if transfer.regularizer != "none":
        parts.append(transfer.regularizer)
    if transfer.fresh_discriminator:
        parts.append("fresh_d")
    if transfer.diffaugment:
        parts.append("diffaugment")
    if transfer.cdc_weight:
        parts.append("cdc")
    return "+".join(parts)


def apply_freezing(model: nn.Module, transfer: TransferRecipe) -> list[str]:
    """Freezes what the recipe asks for; returns the frozen parameter names."""
    frozen: list[str] = []
    if transfer.freeze:
        frozen += freeze(model, transfer.freeze)
    if transfer.freeze_discriminator_blocks:
        frozen += freeze_discriminator_blocks(model, transfer.freeze_discriminator_blocks)
    if transfer.freeze_generator_blocks is not None:
        frozen += freeze_generator_blocks(model, transfer.freeze_generator_blocks)
    if transfer.freeze_encoder:
        frozen += freeze_encoder(model)
    if transfer.freeze_embeddings:
        frozen += freeze_embeddings(model)
    if transfer.freeze_decoder_layers:
        frozen += freeze_decoder_layers(model, transfer.freeze_decoder_layers)
    return frozen


def apply_adapters(model: nn.Module, transfer: TransferRecipe, default_target: str):
    """Adds the LoRA adapter when the recipe has one; returns the PeftModel (the base is changed in place) or None."""
    lora = transfer.lora
    if lora is None:
        return None
    config = lora_config_for(
        model,
        target=lora.target or default_target,
        r=lora.r,
        alpha=lora.alpha,
        dropout=lora.dropout,
        modules=lora.modules,
        modules_to_save=lora.modules_to_save,
        use_dora=lora.use_dora,
    )
    return apply_lora(model, config)


def build_regularizer(
    module: nn.Module,
    transfer: TransferRecipe,
    fisher_loss: Callable[[nn.Module, object], torch.Tensor] | None = None,
    fisher_batches: Iterable | None = None,
) -> nn.Module | None:
    """L2-SP or EWC anchored at `module`'s current (source) weights; call right after the transfer."""
    if transfer.regularizer == "l2sp":
        return L2SP(module, weight=transfer.regularizer_weight)
    if transfer.regularizer == "ewc":
        fisher = estimate_fisher(module, fisher_loss, fisher_batches)
        return EWC(module, fisher, weight=transfer.regularizer_weight)
    return None


def parameter_groups(module: nn.Module, learning_rate: float, transfer: TransferRecipe, weight_decay: float = 0.0):
    """The optimizer's parameter groups: every trainable parameter, with layer-wise learning rates when asked."""
    if transfer.layerwise_lr_decay is not None:
        groups = layerwise_learning_rates(module, learning_rate, transfer.layerwise_lr_decay, weight_decay)
        groups = [{k: v for k, v in group.items() if k in ("params", "lr", "weight_decay")} for group in groups]
    else:
        from ..transfer.vocabulary import ROWS_ONLY

        trained = [p for p in module.parameters() if p.requires_grad]
        rows_only = [p for p in trained if getattr(p, ROWS_ONLY, False)]
        groups = [{"params": [p for p in trained if not getattr(p, ROWS_ONLY, False)], "lr": learning_rate}]
        if rows_only:  # decoupled weight decay would shrink the rows their gradient mask keeps still
            groups.append({"params": rows_only, "lr": learning_rate, "weight_decay": 0.0})
    ratio = transfer.lora.loraplus_lr_ratio if transfer.lora is not None else None
    return _loraplus_split(module, groups, ratio) if ratio is not None else groups


def _loraplus_split(module: nn.Module, groups: list[dict], ratio: float) -> list[dict]:
    """LoRA+: each group's adapter B matrices move to a group of their own at `ratio` times its rate."""
    fast = loraplus_fast_parameters(module)
    split = []
    for group in groups:
        slow = [p for p in group["params"] if id(p) not in fast]
        quick = [p for p in group["params"] if id(p) in fast]
        split += [{**group, "params": slow}] if slow else []
        split += [{**group, "params": quick, "lr": group["lr"] * ratio}] if quick else []
    return split


def transfer_summary(recipe: Recipe, report, model: nn.Module, frozen: list[str], added_tokens=None):
    """
    The contents of `transfer_report.json` (every parameter's fate, the strategy, trainable counts, added tokens)
    and the table the loop prints beside it: `(summary, text)`.
    """
    trainable, total = count_parameters(model)
    summary = {
        "init_from": recipe.init_from,
        "strategy": strategy_name(recipe),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_fraction": trainable / total if total else 0.0,
        "frozen": frozen,
    }
    lines = []
    if report is not None:
        summary["parameters"] = report.to_dict()
        lines.append(report.format_table())
    if added_tokens:
        summary["added_tokens"] = added_tokens
        shown = " ".join(entry["token"] for entry in added_tokens[:40])
        lines.append(f"extend_vocabulary: {len(added_tokens)} new tokens, ids from {added_tokens[0]['id']}: {shown}")
    lines.append(
        f"strategy {summary['strategy']}: {trainable:,} of {total:,} parameters trainable "
        f"({summary['trainable_fraction']:.1%})"
    )
    return summary, "\n".join(lines)


def write_transfer_report(output_dir: str, summary: dict) -> None:
    """Writes `transfer_report.json` into the run folder."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "transfer_report.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
