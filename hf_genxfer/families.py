"""The model families, registered once: what each brings to the one recipe -> model folder pass.

Like transformers' Auto mappings, each entry names its parts by import path, resolved when first used, so that the
registry imports nothing and everything else can import it: the recipe schema (its config class and data section),
the loop (its `Run`), the CLI (its folders' model type and the command that reads them), the cards (its template
and card fields) and the source loader (how a source model is loaded and which sources it accepts). A new family is
one more entry; no other module branches on a family's name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """One model family. The string fields ending in a colon-separated name are import paths (`module:attribute`)."""

    name: str
    model_type: str  # `config.json`'s model_type of the family's own folders
    config: str  # the config class (architecture fields under the recipe's `model:`)
    data_section: str  # the dataclass of the recipe's `data:` section
    run: str  # the `Run` subclass: step functions and sampling/evaluation hooks
    build: str  # (recipe, source or None) -> (model, transfer report or None)
    load_model: str  # name_or_path -> the source model (safetensors only)
    check_source: str  # (model_type, name_or_path) -> None, or raises: which sources the family starts from
    evaluate_folder: str  # (folder, **options) -> scores of a saved run folder on its recipe's held-out data
    card_fields: str  # (recipe, metrics, config, folder) -> (task type, pipeline tag, metric names, template values)
    card_template: str  # file stem under model_cards/
    auto_class: str  # the transformers Auto class that loads its folders, for cards
    default_lora_target: str  # `transfer.lora.target` when the recipe gives none
    folder_command: str  # the `genxfer` command that reads its folders (sample / generate)
    uses_tokenizer: bool  # whether a source brings a tokenizer
    transfer_fields: tuple[str, ...] = ()  # `transfer:` fields only this family has

    def resolve(self, field: str):
        """The object an import-path field names (imported on first use)."""
        module, _, attribute = getattr(self, field).partition(":")
        return getattr(importlib.import_module(module), attribute)


FAMILIES: dict[str, Family] = {
    "gan": Family(
        name="gan",
        model_type="genxfer_gan",
        config="hf_genxfer.models.gan:GANConfig",
        data_section="hf_genxfer.recipes:ImageDataRecipe",
        run="hf_genxfer.training.gan:GANRun",
        build="hf_genxfer.training.gan:build_gan",
        load_model="hf_genxfer.training.gan:load_gan_source",
        check_source="hf_genxfer.training.gan:check_gan_source",
        evaluate_folder="hf_genxfer.training.gan:evaluate_saved_gan",
        card_fields="hf_genxfer.training.gan:gan_card_fields",
        card_template="gan",
        auto_class="AutoModel",
        default_lora_target="generator",
        folder_command="sample",
        uses_tokenizer=False,
        transfer_fields=(
            "freeze_discriminator_blocks",
            "freeze_generator_blocks",
            "fresh_discriminator",
            "diffaugment",
            "cdc_weight",
        ),
    ),
    "seq2seq": Family(
        name="seq2seq",
        model_type="genxfer_seq2seq",
        config="hf_genxfer.models.seq2seq:Seq2SeqConfig",
        data_section="hf_genxfer.recipes:TextDataRecipe",
        run="hf_genxfer.training.seq2seq:Seq2SeqRun",
        build="hf_genxfer.training.seq2seq:build_seq2seq",
        load_model="hf_genxfer.training.seq2seq:load_seq2seq_source",
        check_source="hf_genxfer.training.seq2seq:check_seq2seq_source",
        evaluate_folder="hf_genxfer.training.seq2seq:evaluate_saved_seq2seq",
        card_fields="hf_genxfer.training.seq2seq:seq2seq_card_fields",
        card_template="seq2seq",
        auto_class="AutoModelForSeq2SeqLM",
        default_lora_target="backbone",
        folder_command="generate",
        uses_tokenizer=True,
        transfer_fields=(
            "freeze_encoder",
            "freeze_embeddings",
            "freeze_decoder_layers",
            "retrain_tokenizer",
            "extend_vocabulary",
        ),
    ),
}


def get_family(name: str) -> Family:
    """The registered family called `name` (`gan`, `seq2seq`)."""
    if name not in FAMILIES:
        from .errors import RecipeError

        raise RecipeError(f"family must be one of {', '.join(map(repr, FAMILIES))}, got {name!r}.")
    return FAMILIES[name]


def family_of_folder(model_type: str | None) -> Family | None:
    """The family whose folders have this `model_type`, or None (a plain transformers model, for instance)."""
    return next((family for family in FAMILIES.values() if family.model_type == model_type), None)


__all__ = ["FAMILIES", "Family", "family_of_folder", "get_family"]
