"""The interface between the one training loop and a model family (`Run`), the loop's own state (`RunState`), and
the setup every family shares: the transfer strategy, the multi-task batch plan and loss weighting, the backward
pass through them, and the model folder a run leaves (with its PEFT adapter).

A family's `Run` builds its data and models in `__init__` (writing nothing), does one micro-batch in
`training_step`, and knows how to sample, evaluate and save itself; the loop owns accumulation, logging,
checkpoints, divergence checks, resuming and the files of the run folder.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator

from ..recipes import Recipe


def optimizer_options(training) -> dict:
    """The optimizer's kernel choice (`training.optimizer_implementation`) as torch.optim keyword arguments. "auto" is
    the fused kernel (one kernel for every tensor, on CPU and GPU), as transformers' Trainer defaults to."""
    return {
        "auto": {"fused": True},
        "for_loop": {"foreach": False},
        "foreach": {"foreach": True},
        "fused": {"fused": True},
    }[training.optimizer_implementation]


def place_model(networks: list[torch.nn.Module], training) -> None:
    """The speed options that change the trained networks in place before `accelerator.prepare`: channels-last
    convolutions (4-D weights only) and a compiled forward (`nn.Module.compile`, so the prepared and the unwrapped
    module both run the compiled code)."""
    for network in networks:
        if training.channels_last:
            network.to(memory_format=torch.channels_last)
        if training.compile:
            network.compile()


class RunState:
    """What the loop keeps in every checkpoint: the step reached, the logged history and the early-stopping state."""

    def __init__(self):
        self.step = 0
        self.history: list[dict] = []
        self.best_metric: float | None = None
        self.evaluations_without_improvement = 0
        self.stopped_early = False  # decided at a checkpointed step, so a resumed run does not train past it

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "history": self.history,
            "best_metric": self.best_metric,
            "evaluations_without_improvement": self.evaluations_without_improvement,
            "stopped_early": self.stopped_early,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.best_metric = state["best_metric"]
        self.evaluations_without_improvement = int(state["evaluations_without_improvement"])
        self.stopped_early = bool(state["stopped_early"])


class Run:
    """The interface between the loop and a model family. Subclasses: `GANRun`, `Seq2SeqRun`."""

    def __init__(self, recipe: Recipe, accelerator: Accelerator, source=None):
        self.recipe = recipe
        self.accelerator = accelerator
        self.source = source  # the resolved `init_from` (hf_genxfer.source.Source), None from scratch

    # Set by `setup_strategy` / `setup_multitask`: the transfer's regulariser, PEFT model and report; the multi-task
    # loss weighting and the parameters it balances.
    regularizer = None
    peft_model = None
    transfer_summary: dict | None = None  # written to transfer_report.json by the loop
    transfer_table: str | None = None
    weighting = None
    shared_parameters: list = []
    saved_config = None  # the config of the model `save_model_folder` wrote, for the card

    # ----------------------------------------------------------------------------------------------------------------
    # Setup shared by every family

    def setup_strategy(
        self,
        model: torch.nn.Module,
        default_target: str,
        report,
        fisher_loss=None,
        fisher_batches=None,
        regularized: torch.nn.Module | None = None,
        trainable_tokens=(),
        added_tokens=None,
        after_regularizer=None,
    ) -> None:
        """
        The recipe's transfer strategy, in its one order: freeze, add the LoRA adapter, anchor the regulariser at
        the source weights (`regularized`, default `model`), then (`after_regularizer`, e.g. a GAN's fresh
        discriminator) and the transfer report (kept for the loop to write).
        """
        from .strategy import apply_adapters, apply_freezing, build_regularizer, transfer_summary

        transfer = self.recipe.transfer
        frozen = apply_freezing(model, transfer)
        self.peft_model = apply_adapters(model, transfer, default_target)
        if trainable_tokens:  # added tokens train even where the strategy froze the embedding
            from ..transfer.vocabulary import train_added_rows

            train_added_rows(model, list(trainable_tokens))
        if self.recipe.init_from == "scratch":
            return
        self.regularizer = build_regularizer(regularized or model, transfer, fisher_loss, fisher_batches)
        if after_regularizer is not None:
            after_regularizer()
        self.transfer_summary, self.transfer_table = transfer_summary(self.recipe, report, model, frozen, added_tokens)

    def setup_multitask(self, sizes: dict[str, int], task_names: list[str]) -> None:
        """A multi-task run's batch plan (task offsets into one training set) and loss weighting."""
        from .batches import TaskBatches, build_weighting

        recipe, accelerator = self.recipe, self.accelerator
        self.task_offsets = dict(zip(sizes, [0, *torch.tensor(list(sizes.values())).cumsum(0).tolist()[:-1]]))
        self.task_batches = TaskBatches(
            sizes,
            recipe.training.batch_size,
            recipe.multitask,
            recipe.seed,
            accelerator.process_index,
            accelerator.num_processes,
        )
        self.weighting = build_weighting(recipe.multitask, task_names)

    def forgetting(self, per_task: dict, metrics: dict[str, bool]) -> dict:
        """
        Adding a task to a multi-task source: how much each task the source already had changed, per metric
        (`{name: higher_is_better}`), as `forgetting_<metric>` (positive: the task got worse). {} otherwise.
        """
        before = self.source.per_task_metrics if self.source is not None else {}
        if not before:
            return {}
        changes = {}
        for metric, higher_is_better in metrics.items():
            change = {
                task: (before[task][metric] - per_task[task][metric])
                if higher_is_better
                else (per_task[task][metric] - before[task][metric])
                for task in per_task
                if task in before and metric in before[task]
            }
            if change:
                changes[f"forgetting_{metric}"] = change
        return changes

    def save_model_folder(self, output_dir: str, model, adapter_base: str | None, strip_prefix: str = ""):
        """
        Writes the model (with a LoRA adapter: the adapter alone in `adapter/`, for PEFT's loaders, and the merged
        model at the root, so that the Auto classes and the pipeline load the folder like any other). Returns the
        model saved at the root. The loop saves last, after the final evaluation, so the adapter is merged in place
        (PEFT's `merge_and_unload`); `hf_genxfer.transfer.merged_copy` merges without touching a model still in use.
        """
        from .strategy import save_adapter

        if self.peft_model is not None:
            save_adapter(self.peft_model, output_dir, adapter_base, strip_prefix)
            model = self.peft_model.merge_and_unload()
        model.save_pretrained(output_dir)
        self.saved_config = model.config
        return model

    # ----------------------------------------------------------------------------------------------------------------
    # The backward pass and gradient bookkeeping

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

    def trained_parameters(self, module: torch.nn.Module) -> list[torch.nn.Parameter]:
        """`module`'s parameters that train, listed once (walking the module tree costs ~0.5 ms a call at 8x8)."""
        cache = self.__dict__.setdefault("_trained_parameters", {})
        if id(module) not in cache:
            cache[id(module)] = [p for p in module.parameters() if p.requires_grad]
        return cache[id(module)]

    def _direct(self, optimizer) -> bool:
        """Whether accelerate's optimizer wrapper can be bypassed: it only adds per-call costs (an uncached package
        lookup in `step`, `inspect.signature` in `zero_grad`: 1.2 ms a GAN step at 8x8, genxfer bench speed) when
        there is no gradient scaler, XLA or DeepSpeed."""
        from accelerate.optimizer import AcceleratedOptimizer
        from accelerate.utils import DistributedType

        return (
            type(optimizer) is AcceleratedOptimizer
            and optimizer.scaler is None
            and self.accelerator.distributed_type != DistributedType.XLA
        )

    def step_optimizer(self, optimizer, scheduler) -> None:
        """The optimizer and scheduler steps, with accelerate's semantics (no step while gradients accumulate)."""
        if not self._direct(optimizer):
            optimizer.step()
        elif self.accelerator.sync_gradients:
            optimizer.optimizer.step()
        scheduler.step()  # accelerate's scheduler wrapper: steps only with the optimizer

    def zero_grad(self, optimizer) -> None:
        if not self._direct(optimizer):
            optimizer.zero_grad(set_to_none=True)
        elif self.accelerator.sync_gradients:
            optimizer.optimizer.zero_grad(set_to_none=True)

    def clip_and_measure(self, module: torch.nn.Module) -> torch.Tensor:
        """
        The gradient norm of `module`'s parameters (after the backward pass, before the optimizer step), clipped to
        training.max_grad_norm when set: logged, and watched for NaN/inf by the loop without a host sync.
        """
        max_norm = self.recipe.training.max_grad_norm
        parameters = self.trained_parameters(module)
        if max_norm:
            return self.accelerator.clip_grad_norm_(parameters, max_norm)
        gradients = [p.grad for p in parameters if p.grad is not None]
        if not gradients:
            return torch.zeros((), device=self.accelerator.device)
        return torch.nn.utils.get_total_norm(gradients, error_if_nonfinite=False)

    # ----------------------------------------------------------------------------------------------------------------
    # What each family implements

    def trained_modules(self) -> list[torch.nn.Module]:
        """The prepared modules whose gradients accumulate (given to `accelerator.accumulate`)."""
        raise NotImplementedError

    def training_step(self, batch_number: int) -> dict[str, torch.Tensor]:
        """Forward, backward and optimizer calls for one micro-batch; returns detached losses to log."""
        raise NotImplementedError

    def checkpointed_objects(self) -> dict:
        """`{name: object with state_dict/load_state_dict}` that checkpoints hold besides models and optimizers
        (the same on every process: EMA, loss weights). Their states must be tensors and plain values."""
        return {}

    def per_process_objects(self) -> dict:
        """Like `checkpointed_objects`, for state each process has its own of (e.g. its noise generator)."""
        return {}

    def on_train_start(self, step: int) -> None:
        """Runs once before the first step (after resuming): e.g. the first sample grid."""

    def after_optimizer_step(self, step: int) -> None:
        """Runs once per optimizer step, after the gradients were synced (EMA updates, schedulers)."""

    def periodic_due(self, step: int) -> bool:
        """Whether `periodic` samples or evaluates at `step` (the loop checks for divergence first)."""
        return False

    def periodic(self, step: int, state: RunState) -> bool:
        """Sampling and evaluation during training; returns True to stop early."""
        return False

    def save(self, output_dir: str) -> None:
        """Writes the model folder (weights, config, pipeline or tokenizer)."""
        raise NotImplementedError

    def evaluate(self) -> dict:
        """Final scores on the held-out data, for metrics.json."""
        raise NotImplementedError


__all__ = ["Run", "RunState", "optimizer_options", "place_model"]
