"""Checkpoints of a run: what a killed run needs to continue bit for bit, written atomically and verified before use.

A checkpoint folder holds accelerate's `save_state` files (models as safetensors; optimizer, scheduler and RNG states,
which accelerate reads back with `torch.load(weights_only=True)`), the run's own state as JSON plus safetensors (loop
state, noise generators, EMA, loss weights: never a pickle), and a manifest, `genxfer_checkpoint.json`: the step, the
number of processes, the recipe the checkpoint belongs to, and every file's size and SHA-256. Before a checkpoint is
used every file is checked against the manifest and every pickle-format file is read with the restricted unpickler,
so a damaged or tampered checkpoint is named in one sentence and nothing in it runs as code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil

import torch
from accelerate import Accelerator

from ..errors import CheckpointError

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
MANIFEST_NAME = "genxfer_checkpoint.json"
SHARED_STATE = "genxfer_state"  # .json + .safetensors: the state every process shares (the main process writes it)
PROCESS_STATE = "genxfer_process_{index}"  # .json + .safetensors: one process's own state (its noise generator)
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pkl", ".pt")  # accelerate's optimizer, scheduler and RNG files

# Recipe fields that may change when a run is resumed: where it is written, how often it logs, samples, evaluates
# and saves, how long it runs, and how it is scored at the end. Any other difference means another run.
RESUMABLE_CHANGES = (
    "output_dir",
    "evaluation",
    "training.max_steps",
    "training.resume_from_checkpoint",
    "training.overwrite_output_dir",
    "training.checkpoint_every",
    "training.checkpoints_total_limit",
    "training.log_every",
    "training.sample_every",
    "training.eval_every",
    "training.report_to",
    "training.num_workers",
)


# --------------------------------------------------------------------------------------------------------------------
# Finding checkpoints


def list_checkpoints(checkpoint_dir: str) -> list[tuple[int, str]]:
    """Checkpoint folders as (step, path), oldest first; half-written ones (`.tmp-*`) are ignored."""
    if not os.path.isdir(checkpoint_dir):
        return []
    found = []
    for name in os.listdir(checkpoint_dir):
        match = CHECKPOINT_PATTERN.match(name)
        if match and os.path.isdir(os.path.join(checkpoint_dir, name)):
            found.append((int(match.group(1)), os.path.join(checkpoint_dir, name)))
    return sorted(found)


def run_identity(recipe_dict: dict) -> dict:
    """The recipe fields that make a run the run it is (everything but `RESUMABLE_CHANGES`)."""
    identity = json.loads(json.dumps(recipe_dict, default=str))
    for path in RESUMABLE_CHANGES:
        *parents, last = path.split(".")
        node = identity
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return identity


def first_difference(old, new, prefix: str = "") -> tuple[str, object, object] | None:
    """The first field (dotted path) whose value differs between two recipe mappings, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            found = first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if old == new else (prefix.rstrip("."), old, new)


# --------------------------------------------------------------------------------------------------------------------
# The run's own state as JSON + safetensors


def _split_tensors(value, path: str, tensors: dict):
    """Nested state -> JSON-able tree, moving every tensor into `tensors` under its path."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().to("cpu").contiguous().clone()
        return {"__tensor__": path}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return {"__int_keys__": {str(k): _split_tensors(v, f"{path}.{k}", tensors) for k, v in value.items()}}
        return {key: _split_tensors(v, f"{path}.{key}", tensors) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_tensors(v, f"{path}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"Cannot checkpoint a {type(value).__name__} at {path}: states hold tensors and plain values.")


def _join_tensors(value, tensors: dict):
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        if set(value) == {"__int_keys__"}:
            return {int(k): _join_tensors(v, tensors) for k, v in value["__int_keys__"].items()}
        return {key: _join_tensors(v, tensors) for key, v in value.items()}
    if isinstance(value, list):
        return [_join_tensors(v, tensors) for v in value]
    return value


def write_states(folder: str, stem: str, objects: dict) -> None:
    """`{name: object with state_dict}` -> `stem.json` (the tree) and `stem.safetensors` (its tensors)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    tree = {name: _split_tensors(obj.state_dict(), name, tensors) for name, obj in objects.items()}
    save_file(tensors, os.path.join(folder, f"{stem}.safetensors"))
    with open(os.path.join(folder, f"{stem}.json"), "w", encoding="utf-8") as handle:
        json.dump(tree, handle)


def read_states(folder: str, stem: str) -> dict:
    """The `{name: state_dict}` that `write_states` wrote."""
    from safetensors.torch import load_file

    tensors = load_file(os.path.join(folder, f"{stem}.safetensors"))
    with open(os.path.join(folder, f"{stem}.json"), encoding="utf-8") as handle:
        tree = json.load(handle)
    return {name: _join_tensors(state, tensors) for name, state in tree.items()}


# --------------------------------------------------------------------------------------------------------------------
# Saving


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_manifest(folder: str, step: int, num_processes: int, identity: dict) -> None:
    files = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            _fsync(path)  # on disk before the manifest says the checkpoint is whole
            files[os.path.relpath(path, folder)] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
    manifest = {
        "format": FORMAT_VERSION,
        "step": step,
        "num_processes": num_processes,
        "recipe": identity,
        "files": files,
    }
    with open(os.path.join(folder, MANIFEST_NAME), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def save_checkpoint(
    accelerator: Accelerator,
    checkpoint_dir: str,
    step: int,
    total_limit: int,
    shared: dict,
    per_process: dict,
    identity: dict,
) -> str:
    """
    Saves the full training state for `step`: accelerate's models, optimizers, schedulers and RNG states, then
    `shared` objects (main process) and each process's `per_process` objects, then the manifest. Every process writes
    into a temporary folder that the main process renames into place once the manifest is written, so a crash at any
    moment never leaves a checkpoint that looks complete. Older checkpoints beyond `total_limit` are removed.
    """
    final = os.path.join(checkpoint_dir, f"checkpoint-{step}")
    temporary = os.path.join(checkpoint_dir, f".tmp-checkpoint-{step}")
    if accelerator.is_main_process:
        os.makedirs(checkpoint_dir, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(temporary, safe_serialization=True)
    if per_process:
        write_states(temporary, PROCESS_STATE.format(index=accelerator.process_index), per_process)
    if accelerator.is_main_process:
        write_states(temporary, SHARED_STATE, shared)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_manifest(temporary, step, accelerator.num_processes, identity)
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(temporary, final)
        _fsync(checkpoint_dir)
        for _, path in list_checkpoints(checkpoint_dir)[:-total_limit]:
            shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


# --------------------------------------------------------------------------------------------------------------------
# Verifying and choosing


def read_manifest(path: str) -> dict:
    """The manifest of checkpoint folder `path`, or a CheckpointError naming what is wrong with it."""
    manifest_path = os.path.join(path, MANIFEST_NAME)
    if not os.path.isfile(manifest_path):
        raise CheckpointError(
            f"{path} has no {MANIFEST_NAME}: it was not completely written, or an older hf_genxfer wrote it"
        )
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        if manifest.get("format") != FORMAT_VERSION or not isinstance(manifest.get("files"), dict):
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, UnicodeDecodeError, AttributeError) as error:
        raise CheckpointError(f"{manifest_path} is damaged ({error})") from None
    return manifest


def _check_file(path: str, relative: str, info: dict) -> None:
    file = os.path.join(path, relative)
    if not os.path.isfile(file):
        raise CheckpointError(f"{path} is missing {relative}")
    if os.path.getsize(file) != info.get("size") or _sha256(file) != info.get("sha256"):
        raise CheckpointError(f"{file} is damaged: its contents differ from what was written")
    try:
        if relative.endswith(PICKLE_SUFFIXES):
            from accelerate.utils import load

            load(file, map_location="cpu")  # torch.load(weights_only=True): tensors and plain values only
        elif relative.endswith(".safetensors"):
            from safetensors.torch import load_file

            load_file(file)
        elif relative.endswith(".json"):
            with open(file, encoding="utf-8") as handle:
                json.load(handle)
    except Exception as error:  # the unpickler, safetensors and json each raise their own kinds
        reason = " ".join(str(error).split())[:300]
        if "weights_only" in reason or "Unsupported global" in reason:
            raise CheckpointError(
                f"{file} holds objects other than tensors and plain values (a pickle that could run code), so it "
                "was refused unread"
            ) from None
        raise CheckpointError(f"{file} cannot be read ({type(error).__name__}: {reason})") from None


def verify_checkpoint(path: str, num_processes: int, identity: dict | None = None) -> dict:
    """
    Checks checkpoint folder `path` before anything is loaded from it: the manifest, every file's size and SHA-256,
    every file readable by its safe reader, written by `num_processes` processes, and (with `identity`) written by the
    same run. Returns the manifest; raises CheckpointError with the reason.
    """
    manifest = read_manifest(path)
    if identity is not None:
        _check_same_run(path, manifest, identity)
    if manifest.get("num_processes") != num_processes:
        raise CheckpointError(
            f"{path} was written by {manifest.get('num_processes')} process(es) and this run has {num_processes}: "
            "resume with the same number of processes"
        )
    expected = {f"{SHARED_STATE}.json", f"{SHARED_STATE}.safetensors"}
    missing = sorted(expected - set(manifest["files"]))
    if missing:
        raise CheckpointError(f"{path} is missing {missing[0]}")
    for relative, info in manifest["files"].items():
        _check_file(path, relative, info)
    return manifest


class OtherRunError(CheckpointError):
    """The checkpoint belongs to a run with another recipe: never resumed, never pruned."""


def _check_same_run(path: str, manifest: dict, identity: dict) -> None:
    difference = first_difference(manifest.get("recipe", {}), identity)
    if difference is not None:
        field, old, new = difference
        raise OtherRunError(f"{path} belongs to another run: its recipe has {field}={old!r}, this one {field}={new!r}")


def choose_checkpoint(
    resume_from_checkpoint: str | None, checkpoint_dir: str, num_processes: int, identity: dict, warn=print
) -> str | None:
    """
    The checkpoint to resume (verified), or None to start afresh. `"latest"` takes the newest checkpoint that passes
    every check, warning about each newer one that does not; with none there at all it starts afresh. A path must
    pass the checks itself. A checkpoint of another run (another recipe) is never resumed.
    """
    if resume_from_checkpoint in (None, ""):
        return None
    if resume_from_checkpoint != "latest":
        if not os.path.isdir(resume_from_checkpoint):
            raise CheckpointError(
                f"training.resume_from_checkpoint={resume_from_checkpoint!r} is not a folder: use 'latest' or one of "
                f"the checkpoint-N folders in {checkpoint_dir}."
            )
        try:
            verify_checkpoint(resume_from_checkpoint, num_processes, identity)
        except CheckpointError as error:
            raise CheckpointError(f"Cannot resume: {error}.") from None
        return resume_from_checkpoint
    checkpoints = list_checkpoints(checkpoint_dir)
    problems = []
    for _, path in reversed(checkpoints):
        try:
            verify_checkpoint(path, num_processes, identity)
        except OtherRunError as error:
            raise CheckpointError(
                f"Cannot resume: {error}. Resume that run with its own recipe, or start this one in a new "
                "output_dir or with --set training.overwrite_output_dir=true (which deletes those checkpoints)."
            ) from None
        except CheckpointError as error:
            problems.append(str(error))
            older = "the next older one" if path != checkpoints[0][1] else "none older"
            warn(f"Warning: skipping {os.path.basename(path)}: {error}; trying {older}.")
            continue
        return path
    if checkpoints:
        raise CheckpointError(
            f"None of the {len(checkpoints)} checkpoint(s) in {checkpoint_dir} can be resumed ({'; '.join(problems)}): "
            "start afresh with --set training.overwrite_output_dir=true, or in a new output_dir."
        )
    return None


# --------------------------------------------------------------------------------------------------------------------
# Loading


def load_checkpoint(accelerator: Accelerator, path: str, shared: dict, per_process: dict) -> None:
    """Loads a verified checkpoint into the prepared models, optimizers, schedulers, RNGs and the run's objects."""
    try:
        accelerator.load_state(path)
        states = read_states(path, SHARED_STATE)
        if per_process:
            states.update(read_states(path, PROCESS_STATE.format(index=accelerator.process_index)))
        for name, obj in {**shared, **per_process}.items():
            if name not in states:
                raise KeyError(f"no state for {name}")
            obj.load_state_dict(states[name])
            move = getattr(obj, "to", None)
            if callable(move):  # states load on the CPU; EMA and loss weights live beside the model
                move(accelerator.device)
    except (RuntimeError, KeyError, ValueError, FileNotFoundError) as error:
        reason = " ".join(str(error).split())[:300]
        raise CheckpointError(
            f"{path} does not fit this run's model ({type(error).__name__}: {reason}): resume with the recipe that "
            "wrote it, or start afresh with --set training.overwrite_output_dir=true."
        ) from None
