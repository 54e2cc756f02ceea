"""Checkpoints of a run: accelerate's `save_state`, written atomically, pruned to a limit, and found again to resume."""

from __future__ import annotations

import os
import re
import shutil

from accelerate import Accelerator

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(checkpoint_dir: str) -> list[tuple[int, str]]:
    """Complete checkpoints as (step, path), oldest first; half-written ones (`.tmp-*`) are ignored."""
    if not os.path.isdir(checkpoint_dir):
        return []
    found = []
    for name in os.listdir(checkpoint_dir):
        match = CHECKPOINT_PATTERN.match(name)
        if match and os.path.isdir(os.path.join(checkpoint_dir, name)):
            found.append((int(match.group(1)), os.path.join(checkpoint_dir, name)))
    return sorted(found)


def save_checkpoint(accelerator: Accelerator, checkpoint_dir: str, step: int, total_limit: int) -> str:
    """
    Saves the full training state for `step`. Every process writes into a temporary folder, which the main process
    then renames into place, so a crash mid-write never leaves a checkpoint that looks complete.
    """
    final = os.path.join(checkpoint_dir, f"checkpoint-{step}")
    temporary = os.path.join(checkpoint_dir, f".tmp-checkpoint-{step}")
    if accelerator.is_main_process:
        os.makedirs(checkpoint_dir, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary, safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(temporary, final)
        for _, path in list_checkpoints(checkpoint_dir)[:-total_limit]:
            shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def resolve_resume_path(resume_from_checkpoint: str | None, checkpoint_dir: str) -> str | None:
    """`"latest"` -> the newest complete checkpoint (or None when there is none yet); a path -> that path."""
    if resume_from_checkpoint in (None, ""):
        return None
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(checkpoint_dir)
        return checkpoints[-1][1] if checkpoints else None
    if not os.path.isdir(resume_from_checkpoint):
        raise FileNotFoundError(
            f"training.resume_from_checkpoint={resume_from_checkpoint!r} is not a folder: "
            f"use 'latest' or one of the checkpoint-N folders in {checkpoint_dir}."
        )
    return resume_from_checkpoint
