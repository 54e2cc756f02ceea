"""Pushing a run folder to the Hub (or any Hub-compatible endpoint named by HF_ENDPOINT) with its model card."""

from __future__ import annotations

import json
import os

from huggingface_hub import HfApi

from .errors import ModelFolderError

PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

# Resume state and raw logs stay local; weights, config, tokenizer, pipeline, card, plots and metrics go up.
PUSH_IGNORE = ["checkpoints/*", "logs/*", ".tmp-*", "*/.tmp-*"]


def push_run(
    folder: str, repo_id: str, private: bool = False, token: str | None = None, commit_message: str | None = None
):
    """
    Uploads a run folder written by `genxfer train` to `repo_id`: the card is rewritten first so that its usage
    examples name the repository. Returns the commit info.
    """
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(
            f"{folder!r} holds no config.json: pass the output_dir of a finished `genxfer train` run."
        )
    from .cards import write_model_card

    if os.path.isfile(os.path.join(folder, "genxfer_recipe.yaml")):
        write_model_card(folder, repo_id=repo_id)
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        ignore_patterns=PUSH_IGNORE,
        commit_message=commit_message or f"Upload {os.path.basename(os.path.normpath(folder))} with hf_genxfer",
    )


def source_file(name_or_path: str, filename: str) -> str | None:
    """
    A file of a source model given as a local folder or a Hub id (downloaded through huggingface_hub's cache), or
    None when the source has no such file: the side files of a run (its recipe, metrics) are optional for a source.
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


def source_per_task_metrics(init_from: str) -> dict:
    """
    The per-task scores a multi-task source model was saved with (`per_task` of its metrics.json), {} when it has
    none: the "before" of the forgetting an added task causes.
    """
    if init_from == "scratch":
        return {}
    path = source_file(init_from, "metrics.json")
    if path is None:
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("per_task", {})


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


def source_model_type(name_or_path: str) -> str | None:
    """The `model_type` of a source folder or Hub id (its config.json only; checked like any model folder)."""
    if os.path.isdir(name_or_path):
        return check_model_folder(name_or_path)
    try:
        path = source_file(name_or_path, "config.json")
    except OSError:
        path = None
    if path is None:
        raise _not_found(name_or_path)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("model_type")


def check_source_family(name_or_path: str, family: str) -> str | None:
    """`init_from` must be a model the recipe's family can start from: a GAN run, or an encoder-decoder."""
    model_type = source_model_type(name_or_path)
    if family == "gan" and model_type != "genxfer_gan":
        raise ModelFolderError(
            f"init_from {name_or_path!r} is a {model_type} model and this recipe's family is gan: start a GAN "
            "from a GAN run folder or Hub id (model_type genxfer_gan), or set family: seq2seq."
        )
    if family == "seq2seq" and model_type != "genxfer_seq2seq":
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

        if model_type == "genxfer_gan":
            raise ModelFolderError(
                f"init_from {name_or_path!r} is a GAN (genxfer_gan) and this recipe's family is seq2seq: start "
                "from a Seq2Seq run or a transformers encoder-decoder, or set family: gan."
            )
        if model_type not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
            raise ModelFolderError(
                f"init_from {name_or_path!r} is a {model_type} model, not an encoder-decoder: a Seq2Seq recipe "
                "starts from a Seq2Seq run or an AutoModelForSeq2SeqLM architecture (T5, BART, Marian, ...)."
            )
    return model_type


def load_source(loader, name_or_path: str, what: str = "init_from", **kwargs):
    """
    `loader(name_or_path, **kwargs)` (a `from_pretrained`) with one clear sentence when a recipe's `init_from` names
    neither a local folder nor a repository the configured Hub serves (transformers' own message spans lines and
    names huggingface.co whatever HF_ENDPOINT says), or holds weights that cannot be read.
    """
    from safetensors import SafetensorError

    try:
        return loader(name_or_path, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as error:
        if not os.path.isdir(name_or_path) and isinstance(error, OSError):
            raise _not_found(name_or_path, what) from error
        reason = " ".join(str(error).split())[:300]
        raise ModelFolderError(
            f"{what} {name_or_path!r} cannot be loaded ({type(error).__name__}: {reason}): its files are damaged "
            "or do not match its config.json; save or download the model again."
        ) from None
