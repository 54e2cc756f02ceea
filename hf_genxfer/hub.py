"""Pushing a run folder to the Hub (or any Hub-compatible endpoint named by HF_ENDPOINT) with its model card."""

from __future__ import annotations

import json
import os

from huggingface_hub import HfApi

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


def load_source(loader, name_or_path: str, **kwargs):
    """
    `loader(name_or_path, **kwargs)` (a `from_pretrained`) with one clear sentence when a recipe's `init_from` names
    neither a local folder nor a repository the configured Hub serves (transformers' own message spans lines and
    names huggingface.co whatever HF_ENDPOINT says).
    """
    try:
        return loader(name_or_path, **kwargs)
    except OSError as error:
        if os.path.isdir(name_or_path):
            raise
        from huggingface_hub import constants

        raise FileNotFoundError(
            f"init_from {name_or_path!r} is neither a local folder nor a model on {constants.ENDPOINT}: pass a run "
            "folder's path, or a repository id that exists there (set HF_ENDPOINT for another Hub and HF_TOKEN "
            "for a private repository)."
        ) from error
