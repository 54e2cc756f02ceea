"""The one accelerate training loop shared by every family; each family brings its own step functions (a `Run`).

The loop looks the recipe's family up in the registry, resolves the source once, and owns what every run shares:
accumulation, logging, divergence checks, checkpoints, resuming, the progress bar and the files of the run folder
(recipe, transfer report, metrics, history, model card). It knows the `Run` interface, not the families.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from ..errors import CheckpointError
from ..families import get_family
from ..recipes import Recipe, recipe_to_dict
from .checkpointing import choose_checkpoint, list_checkpoints, load_checkpoint, run_identity, save_checkpoint
from .divergence import DivergenceGuard, raise_if_diverged
from .run import RunState

logger = logging.getLogger(__name__)


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}/"))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def _has_accelerator_device() -> bool:
    return (
        torch.cuda.is_available()
        or (hasattr(torch, "xpu") and torch.xpu.is_available())
        or torch.backends.mps.is_available()
    )


def build_accelerator(recipe: Recipe, **kwargs) -> Accelerator:
    training = recipe.training
    log_with = None if training.report_to in ("none", "", None) else training.report_to
    if recipe.model.get("task_names"):
        # A multi-task batch may leave a task's head unused; DDP must not wait for its gradients.
        from accelerate.utils import DistributedDataParallelKwargs

        kwargs.setdefault("kwargs_handlers", []).append(DistributedDataParallelKwargs(find_unused_parameters=True))
    # Without an accelerator device, ask for the CPU explicitly: then a multi-process launch (the MULTI_GPU
    # distributed type of recipes/accelerate/multi_process_cpu.yaml) runs real gloo processes instead of N copies.
    kwargs.setdefault("cpu", not _has_accelerator_device())
    return Accelerator(
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        mixed_precision=training.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(
            project_dir=recipe.output_dir, logging_dir=os.path.join(recipe.output_dir, "logs")
        ),
        **kwargs,
    )


def _prepare_output_dir(recipe: Recipe, checkpoint_dir: str, identity: dict, accelerator: Accelerator) -> str | None:
    """
    The checkpoint this run continues, or None to start afresh, decided before anything is written: a run never
    continues or prunes another run's checkpoints.
    """
    training = recipe.training
    if training.overwrite_output_dir:
        if accelerator.is_main_process and os.path.isdir(checkpoint_dir):
            accelerator.print(f"training.overwrite_output_dir: deleting the earlier run's {checkpoint_dir}.")
            shutil.rmtree(checkpoint_dir)
        accelerator.wait_for_everyone()
        return None
    if training.resume_from_checkpoint in (None, ""):
        checkpoints = list_checkpoints(checkpoint_dir)
        if checkpoints:
            raise CheckpointError(
                f"{recipe.output_dir} holds the checkpoints of an earlier run (up to step {checkpoints[-1][0]}): "
                "continue that run with --set training.resume_from_checkpoint=latest, or start this one in a new "
                "output_dir or with --set training.overwrite_output_dir=true (which deletes them)."
            )
        return None
    return choose_checkpoint(
        training.resume_from_checkpoint, checkpoint_dir, accelerator.num_processes, identity, warn=accelerator.print
    )


def _progress_disabled(accelerator: Accelerator) -> bool:
    """The bar shows on the local main process only, and never when TQDM_DISABLE is set (as tqdm itself reads it)."""
    return not accelerator.is_local_main_process or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


@dataclasses.dataclass
class TrainingSession:
    """What `train` sets up before its first step: the accelerator, the family's `Run`, the loop's state (resumed when
    asked) and what checkpoints hold. `genxfer bench speed` times the loop's steps on one of these."""

    recipe: Recipe
    accelerator: Accelerator
    run: object
    state: RunState
    shared: dict
    per_process: dict
    identity: dict


def start_session(recipe: Recipe, accelerator: Accelerator | None = None) -> TrainingSession:
    """
    Everything before the first step: the output folder is checked (and the recipe written), the source resolved,
    the family's `Run` built, and its checkpoint loaded when the run resumes.
    """
    accelerator = accelerator or build_accelerator(recipe)
    checkpoint_dir = os.path.join(recipe.output_dir, "checkpoints")
    identity = run_identity(recipe_to_dict(recipe))
    resume_path = _prepare_output_dir(recipe, checkpoint_dir, identity, accelerator)
    set_seed(recipe.seed, device_specific=True)
    if accelerator.is_main_process:
        os.makedirs(recipe.output_dir, exist_ok=True)
        with open(os.path.join(recipe.output_dir, "genxfer_recipe.yaml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(recipe_to_dict(recipe), handle, sort_keys=False)

    family = get_family(recipe.family)
    source = None
    if recipe.init_from != "scratch":
        from ..source import load_source

        source = load_source(recipe.init_from, family)
    run = family.resolve("run")(recipe, accelerator, source)
    if run.transfer_summary is not None and accelerator.is_main_process:
        from .strategy import write_transfer_report

        accelerator.print(run.transfer_table)
        write_transfer_report(recipe.output_dir, run.transfer_summary)
    state = RunState()
    shared = {"loop": state, **run.checkpointed_objects()}
    per_process = run.per_process_objects()
    if resume_path is not None:
        load_checkpoint(accelerator, resume_path, shared, per_process)
        accelerator.print(f"Resumed from {resume_path} at step {state.step}.")
    return TrainingSession(recipe, accelerator, run, state, shared, per_process, identity)


def train(recipe: Recipe, accelerator: Accelerator | None = None, stop_after_steps: int | None = None) -> dict:
    """
    Runs a recipe to the end (or to `stop_after_steps`, used by tests to simulate a crash) and returns the final
    metrics. Writes the model folder, metrics.json and checkpoints under `recipe.output_dir`.

    Raises `CheckpointError` when the output folder holds another run's checkpoints or the one to resume is damaged,
    and `TrainingDiverged` at the first check after a loss, a gradient norm or a weight became NaN or infinite (no
    checkpoint or model is written after it; the last good checkpoint is kept).
    """
    session = start_session(recipe, accelerator)
    accelerator, training = session.accelerator, recipe.training
    if training.report_to not in ("none", "", None):
        accelerator.init_trackers("genxfer", config=_flatten(dataclasses.asdict(recipe)))
    try:
        metrics = _train_loop(session, stop_after_steps)
    except BaseException:
        accelerator.end_training()
        raise
    accelerator.end_training()
    return metrics


class StepRunner:
    """
    One optimizer step of the loop at a time: its micro-batches (under `accelerator.accumulate`), the divergence
    watch, and the logged values, summed on the device and read (one host synchronisation) only by `read_logs`.
    """

    def __init__(self, session: TrainingSession):
        self.session = session
        self.guard = DivergenceGuard(session.accelerator.device)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def step(self) -> int:
        session = self.session
        run, state, accumulation = session.run, session.state, session.recipe.training.gradient_accumulation_steps
        step = state.step + 1
        for micro in range(accumulation):
            batch_number = state.step * accumulation + micro
            with session.accelerator.accumulate(*run.trained_modules()):
                losses = run.training_step(batch_number)
            self.guard.observe(step, losses)
            for name, value in losses.items():
                value = value.detach().float()
                self.sums[name] = self.sums[name] + value if name in self.sums else value
                self.counts[name] = self.counts.get(name, 0) + 1
        state.step = step
        run.after_optimizer_step(step)
        return step

    def read_logs(self) -> dict[str, float]:
        """The mean of each logged value since the last read, over every process."""
        accelerator = self.session.accelerator
        logs = {
            name: float(accelerator.reduce((self.sums[name] / self.counts[name]).to(accelerator.device), "mean"))
            for name in self.sums
        }
        self.sums, self.counts = {}, {}
        return logs


def _train_loop(session: TrainingSession, stop_after_steps: int | None) -> dict:
    recipe, accelerator, run, state = session.recipe, session.accelerator, session.run, session.state
    shared, per_process, identity = session.shared, session.per_process, session.identity
    training = recipe.training
    checkpoint_dir = os.path.join(recipe.output_dir, "checkpoints")
    run.on_train_start(state.step)
    progress = tqdm(
        total=training.max_steps, initial=state.step, disable=_progress_disabled(accelerator), desc="train"
    )
    steps = StepRunner(session)
    guard = steps.guard
    started = time.perf_counter()
    last_stop = training.max_steps if stop_after_steps is None else min(training.max_steps, stop_after_steps)
    try:
        while not state.stopped_early and state.step < last_stop:
            step = steps.step()
            progress.update(1)

            log_due = step % training.log_every == 0 or step == last_stop
            checkpoint_due = step % training.checkpoint_every == 0 or step == training.max_steps
            if log_due or checkpoint_due or run.periodic_due(step):
                raise_if_diverged(guard, accelerator, training, list_checkpoints(checkpoint_dir))
            if log_due:
                logs = steps.read_logs()
                accelerator.log(logs, step=step)
                state.history.append({"step": step, **logs})
                progress.set_postfix({name: f"{value:.4g}" for name, value in logs.items()})
            if run.periodic(step, state):
                state.stopped_early = True
            if checkpoint_due or state.stopped_early:
                # The weights too: a checkpoint is only ever written from finite weights.
                raise_if_diverged(
                    guard, accelerator, training, list_checkpoints(checkpoint_dir), run.trained_modules()
                )
                save_checkpoint(
                    accelerator, checkpoint_dir, step, training.checkpoints_total_limit, shared, per_process, identity
                )
            if state.stopped_early:
                accelerator.print(
                    f"Early stopping at step {step}: no improvement in {training.early_stopping_metric}."
                )
    finally:
        progress.close()
    train_seconds = time.perf_counter() - started

    if state.step < training.max_steps and not state.stopped_early:
        return {"step": state.step}

    raise_if_diverged(guard, accelerator, training, list_checkpoints(checkpoint_dir), run.trained_modules())
    accelerator.wait_for_everyone()
    metrics = run.evaluate()
    metrics.update({"step": state.step, "train_seconds": round(train_seconds, 1)})
    if accelerator.is_main_process:
        run.save(recipe.output_dir)
        with open(os.path.join(recipe.output_dir, "metrics.json"), "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2)
        with open(os.path.join(recipe.output_dir, "training_history.json"), "w", encoding="utf-8") as handle:
            json.dump(state.history, handle)
        from ..cards import write_model_card

        write_model_card(
            recipe.output_dir,
            recipe=recipe,
            metrics=metrics,
            transfer=run.transfer_summary,
            history=state.history,
            config=run.saved_config.to_dict() if run.saved_config is not None else None,
        )
    accelerator.log({f"eval/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, step=state.step)
    return metrics


def describe_model(recipe: Recipe) -> str:
    """One line on the model a recipe trains: parameters in all and trainable (after freezing and adapters)."""
    from .strategy import apply_adapters, apply_freezing

    family = get_family(recipe.family)
    source = None
    if recipe.init_from != "scratch":
        from ..source import load_source

        source = load_source(recipe.init_from, family)
    model = family.resolve("build")(recipe, source)[0]
    apply_freezing(model, recipe.transfer)
    apply_adapters(model, recipe.transfer, default_target=family.default_lora_target)
    total, trainable = model.num_parameters(), model.num_parameters(only_trainable=True)
    return f"model: {type(model).__name__}, {total:,} parameters, {trainable:,} trainable ({trainable / total:.1%})"
