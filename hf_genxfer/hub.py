"""Pushing a run folder to the Hub (or any Hub-compatible endpoint named by HF_ENDPOINT) with its model card.

Loading from the Hub is `hf_genxfer.source` (sources) and the Auto classes (run folders)."""

from __future__ import annotations

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
