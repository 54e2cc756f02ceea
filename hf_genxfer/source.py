"""The source of a transfer, resolved once before a run starts: its model, tokenizer, recipe and per-task scores,
from a local folder or a Hub id; and the checks and error sentences every load of a model folder shares."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .errors import ModelFolderError

PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def source_file(name_or_path: str, filename: str) -> str | None:
    """
    A file of a model given as a local folder or a Hub id (downloaded through huggingface_hub's cache), or None when
    it has no such file: the side files of a run (its recipe, metrics) are optional for a source.
    """
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, filename)
        return path if os.path.isfile(path) else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return hf_hub_download(name_or_path, filename)
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


def _not_found(name_or_path: str, what: str = "init_from") -> ModelFolderError:
    from huggingface_hub import constants

    return ModelFolderError(
        f"{what} {name_or_path!r} is neither a local folder nor a model on {constants.ENDPOINT}: pass a run "
        "folder's path, or a repository id that exists there (set HF_ENDPOINT for another Hub and HF_TOKEN "
        "for a private repository)."
    )


def check_model_folder(folder: str, what: str = "init_from") -> str:
    """
    A local model folder must hold a config.json and safetensors weights: weights only as a pickle
    (`pytorch_model.bin`) are refused, since unpickling can run code. Returns the folder's `model_type`.
    """
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise ModelFolderError(
            f"{what} {folder!r} holds no config.json: pass a folder written by `genxfer train` or save_pretrained."
        )
    try:
        with open(config_path, encoding="utf-8") as handle:
            model_type = json.load(handle).get("model_type")
    except (ValueError, UnicodeDecodeError, AttributeError) as error:
        raise ModelFolderError(f"{config_path} is not a valid config.json ({error}): save the model again.") from None
    names = os.listdir(folder)
    if not any(name.endswith(".safetensors") or name.endswith(".safetensors.index.json") for name in names):
        pickles = sorted(name for name in names if name.endswith(PICKLE_WEIGHT_SUFFIXES))
        if pickles:
            raise ModelFolderError(
                f"{what} {folder!r} holds its weights only as a pickle ({pickles[0]}): hf_genxfer loads "
                "safetensors only, because unpickling can run code; convert it where you trust its origin "
                "(from_pretrained(folder, use_safetensors=False), then save_pretrained(folder)) and try again."
            )
        raise ModelFolderError(f"{what} {folder!r} holds no model.safetensors: pass a folder with the weights.")
    return model_type


def model_type_of(name_or_path: str, what: str = "init_from") -> str | None:
    """The `model_type` of a folder or Hub id (its config.json only; a folder is checked like any model folder)."""
    if os.path.isdir(name_or_path):
        return check_model_folder(name_or_path, what)
    try:
        path = source_file(name_or_path, "config.json")
    except OSError:
        path = None
    if path is None:
        raise _not_found(name_or_path, what)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("model_type")


def load_pretrained(loader, name_or_path: str, what: str = "init_from", **kwargs):
    """
    `loader(name_or_path, **kwargs)` (a `from_pretrained`) with one clear sentence when `name_or_path` is neither a
    local folder nor a repository the configured Hub serves (transformers' own message spans lines and names
    huggingface.co whatever HF_ENDPOINT says), or holds weights that cannot be read.
    """
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError

    try:
        return loader(name_or_path, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError, StrictDataclassError) as error:
        if not os.path.isdir(name_or_path) and isinstance(error, OSError):
            raise _not_found(name_or_path, what) from error
        reason = " ".join(str(error).split())[:300]
        raise ModelFolderError(
            f"{what} {name_or_path!r} cannot be loaded ({type(error).__name__}: {reason}): its files are damaged "
            "or do not match its config.json; save or download the model again."
        ) from None


@dataclass
class Source:
    """
    A source model and what came with it: its tokenizer (Seq2Seq), the recipe it was trained with (for EWC's Fisher
    data) and its per-task scores (the "before" of the forgetting an added task causes), each None/{} when the
    source has none (a plain transformers model has no recipe).
    """

    name_or_path: str
    model_type: str | None
    model: object
    tokenizer: object | None = None
    recipe: object | None = None
    per_task_metrics: dict = field(default_factory=dict)


def load_source(name_or_path: str, family) -> Source:
    """Resolves a recipe's `init_from` once: checks that `family` can start from it, then loads what it holds."""
    model_type = model_type_of(name_or_path)
    family.resolve("check_source")(model_type, name_or_path)
    tokenizer = None
    if family.uses_tokenizer:
        from transformers import AutoTokenizer

        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, name_or_path)
    model = load_pretrained(family.resolve("load_model"), name_or_path)
    recipe = None
    recipe_path = source_file(name_or_path, "genxfer_recipe.yaml")
    if recipe_path is not None:
        from .recipes import load_recipe

        recipe = load_recipe(recipe_path)
    per_task = {}
    metrics_path = source_file(name_or_path, "metrics.json")
    if metrics_path is not None:
        with open(metrics_path, encoding="utf-8") as handle:
            per_task = json.load(handle).get("per_task", {})
    return Source(name_or_path, model_type, model, tokenizer, recipe, per_task)


__all__ = [
    "Source",
    "check_model_folder",
    "load_pretrained",
    "load_source",
    "model_type_of",
    "source_file",
]
