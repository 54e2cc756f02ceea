"""The one accelerate training loop shared by every family; each family brings its own step functions (a `Run`).

A Run builds its data, models and optimizers, does one micro-batch in `training_step`, and knows how to sample,
evaluate and save itself. The loop owns accumulation, logging, checkpoints, resuming and the progress bar.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from ..recipes import Recipe, recipe_to_dict
from .checkpointing import list_checkpoints, resolve_resume_path, save_checkpoint

logger = logging.getLogger(__name__)


class RunState:
    """What the loop adds to accelerate's checkpoint: the step reached and the history of logged values."""

    def __init__(self):
        self.step = 0
        self.history: list[dict] = []
        self.best_metric: float | None = None
        self.evaluations_without_improvement = 0

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "history": json.dumps(self.history),
            "best_metric": self.best_metric,
            "evaluations_without_improvement": self.evaluations_without_improvement,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.history = json.loads(state["history"])
        self.best_metric = state["best_metric"]
        self.evaluations_without_improvement = int(state["evaluations_without_improvement"])


class Run:
    """The interface between the loop and a model family. Subclasses: `GANRun`, `Seq2SeqRun`."""

    def __init__(self, recipe: Recipe, accelerator: Accelerator):
        self.recipe = recipe
        self.accelerator = accelerator

    # Set by subclasses that use them: the transfer regulariser, the multi-task loss weighting and its parameters.
    regularizer = None
    weighting = None
    shared_parameters: list = []

    def backward(self, loss: torch.Tensor, task_losses: dict | None, logs: dict, prefix: str) -> None:
        """
        The backward pass of the trained network: the loss (plus the L2-SP/EWC penalty), or for a multi-task run
        the per-task losses through the loss weighting, then the penalty on its own (a gradient-based weighting
        writes the shared gradients itself). Adds what it computed to `logs`.
        """
        if self.weighting is None:
            if self.regularizer is not None:  # keep the weights near the source ones
                penalty = self.regularizer.penalty()
                loss = loss + penalty
                logs["regularizer"] = penalty.detach()
            self.accelerator.backward(loss)
            return
        self.weighting.backward(
            task_losses, shared_parameters=self.shared_parameters, backward_fn=self.accelerator.backward
        )
        logs.update({f"{prefix}/{name}": value.detach() for name, value in task_losses.items()})
        if self.regularizer is not None:
            penalty = self.regularizer.penalty()
            self.accelerator.backward(penalty)
            logs["regularizer"] = penalty.detach()

    def after_weighted_step(self, logs: dict) -> None:
        """After the optimizer step: GradNorm's weight update (nothing for the other weightings), and their log."""
        if self.weighting is not None and self.accelerator.sync_gradients:
            self.weighting.step()
            logs.update({f"weight/{name}": torch.tensor(w) for name, w in self.weighting.weights().items()})

    def trained_modules(self) -> list[torch.nn.Module]:
        """The prepared modules whose gradients accumulate (given to `accelerator.accumulate`)."""
        raise NotImplementedError

    def training_step(self, batch_number: int) -> dict[str, torch.Tensor]:
        """Forward, backward and optimizer calls for one micro-batch; returns detached losses to log."""
        raise NotImplementedError

    def checkpointed_objects(self) -> list:
        """Objects with state_dict/load_state_dict that checkpoints must hold besides models and optimizers."""
        return []

    def on_train_start(self, step: int) -> None:
        """Runs once before the first step (after resuming): e.g. the first sample grid."""

    def after_optimizer_step(self, step: int) -> None:
        """Runs once per optimizer step, after the gradients were synced (EMA updates, schedulers)."""

    def periodic(self, step: int, state: RunState) -> bool:
        """Sampling and evaluation during training; returns True to stop early."""
        return False

    def save(self, output_dir: str) -> None:
        """Writes the model folder (weights, config, pipeline or tokenizer)."""
        raise NotImplementedError

    def evaluate(self) -> dict:
        """Final scores on the held-out data, for metrics.json."""
        raise NotImplementedError


def _make_run(recipe: Recipe, accelerator: Accelerator) -> Run:
    if recipe.family == "gan":
        from .gan import GANRun

        return GANRun(recipe, accelerator)
    from .seq2seq import Seq2SeqRun

    return Seq2SeqRun(recipe, accelerator)


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


def train(recipe: Recipe, accelerator: Accelerator | None = None, stop_after_steps: int | None = None) -> dict:
    """
    Runs a recipe to the end (or to `stop_after_steps`, used by tests to simulate a crash) and returns the final
    metrics. Writes the model folder, metrics.json and checkpoints under `recipe.output_dir`.
    """
    accelerator = accelerator or build_accelerator(recipe)
    training = recipe.training
    set_seed(recipe.seed, device_specific=True)
    checkpoint_dir = os.path.join(recipe.output_dir, "checkpoints")
    if accelerator.is_main_process:
        os.makedirs(recipe.output_dir, exist_ok=True)
        with open(os.path.join(recipe.output_dir, "genxfer_recipe.yaml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(recipe_to_dict(recipe), handle, sort_keys=False)

    run = _make_run(recipe, accelerator)
    state = RunState()
    accelerator.register_for_checkpointing(state)
    for extra in run.checkpointed_objects():
        accelerator.register_for_checkpointing(extra)

    resume_path = resolve_resume_path(training.resume_from_checkpoint, checkpoint_dir)
    if resume_path is not None:
        accelerator.load_state(resume_path)
        accelerator.print(f"Resumed from {resume_path} at step {state.step}.")
    elif training.resume_from_checkpoint is None and list_checkpoints(checkpoint_dir):
        accelerator.print(
            f"Note: {checkpoint_dir} holds checkpoints of an earlier run; starting afresh. "
            "Set training.resume_from_checkpoint=latest to continue it."
        )

    if training.report_to not in ("none", "", None):
        accelerator.init_trackers("genxfer", config=_flatten(dataclasses.asdict(recipe)))
    run.on_train_start(state.step)

    progress = tqdm(
        total=training.max_steps, initial=state.step, disable=not accelerator.is_local_main_process, desc="train"
    )
    started = time.perf_counter()
    running: dict[str, float] = {}
    running_steps = 0
    stopped_early = False
    last_stop = training.max_steps if stop_after_steps is None else min(training.max_steps, stop_after_steps)
    while state.step < last_stop:
        for micro in range(training.gradient_accumulation_steps):
            batch_number = state.step * training.gradient_accumulation_steps + micro
            with accelerator.accumulate(*run.trained_modules()):
                losses = run.training_step(batch_number)
            for name, value in losses.items():
                running[name] = running.get(name, 0.0) + float(value) / training.gradient_accumulation_steps
        state.step += 1
        running_steps += 1
        run.after_optimizer_step(state.step)
        progress.update(1)

        if state.step % training.log_every == 0 or state.step == last_stop:
            logs = {
                name: float(accelerator.reduce(torch.tensor(total / running_steps, device=accelerator.device), "mean"))
                for name, total in running.items()
            }
            running, running_steps = {}, 0
            accelerator.log(logs, step=state.step)
            state.history.append({"step": state.step, **logs})
            progress.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        if run.periodic(state.step, state):
            stopped_early = True
        if state.step % training.checkpoint_every == 0 or state.step == training.max_steps or stopped_early:
            save_checkpoint(accelerator, checkpoint_dir, state.step, training.checkpoints_total_limit)
        if stopped_early:
            accelerator.print(
                f"Early stopping at step {state.step}: no improvement in {training.early_stopping_metric}."
            )
            break
    progress.close()
    train_seconds = time.perf_counter() - started

    if state.step < training.max_steps and not stopped_early:
        accelerator.end_training()
        return {"step": state.step}

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

        write_model_card(recipe.output_dir)
    accelerator.log({f"eval/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, step=state.step)
    accelerator.end_training()
    return metrics


def describe_model(recipe: Recipe) -> str:
    """One line on the model a recipe trains: parameters in all and trainable (after freezing and adapters)."""
    from .strategy import apply_adapters, apply_freezing

    if recipe.family == "gan":
        from .gan import build_gan

        model, target = build_gan(recipe)[0], "generator"
    else:
        from .seq2seq import build_seq2seq

        model, target = build_seq2seq(recipe)[0], "backbone"
    apply_freezing(model, recipe.transfer)
    apply_adapters(model, recipe.transfer, default_target=target)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"model: {type(model).__name__}, {total:,} parameters, {trainable:,} trainable ({trainable / total:.1%})"
