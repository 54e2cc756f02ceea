"""Divergence checks without a host synchronisation per step: non-finite losses and gradient norms are recorded on
the device as they happen, and read only where the loop syncs anyway (logging, checkpoints, evaluation, the end)."""

from __future__ import annotations

import torch

from ..errors import TrainingDiverged


class DivergenceGuard:
    """
    Remembers, for every logged value (losses, gradient norms), the first step at which it was NaN or infinite.

    `observe` runs every micro-batch and only queues device operations; `first_divergence` reads them (one sync)
    and is called where the loop syncs anyway.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.names: list[str] = []
        self.slots: dict[str, int] = {}
        self.first_bad = torch.full((0,), -1, dtype=torch.long, device=device)  # per name: first bad step, or -1
        self._index_cache: dict[tuple[str, ...], torch.Tensor] = {}

    def observe(self, step: int, values: dict[str, torch.Tensor]) -> None:
        names = tuple(values)
        if not names:
            return
        index = self._index_cache.get(names)
        if index is None:
            for name in names:
                if name not in self.slots:
                    self.slots[name] = len(self.names)
                    self.names.append(name)
            grown = torch.full((len(self.names),), -1, dtype=torch.long, device=self.device)
            grown[: len(self.first_bad)] = self.first_bad
            self.first_bad = grown
            index = torch.tensor([self.slots[name] for name in names], device=self.device)
            self._index_cache = {key: value for key, value in self._index_cache.items() if len(key) <= len(names)}
            self._index_cache[names] = index
        stacked = torch.stack([values[name].detach().float().reshape(()) for name in names]).to(self.device)
        current = self.first_bad.index_select(0, index)
        updated = torch.where((current < 0) & ~torch.isfinite(stacked), step, current)
        self.first_bad.index_copy_(0, index, updated)

    def first_divergence(self, accelerator) -> tuple[int, list[str]] | None:
        """(first step, the values that were non-finite at it) over every process, or None. Syncs once."""
        bad = {name: step for name, step in zip(self.names, self.first_bad.tolist()) if step >= 0}
        if accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            merged: dict[str, int] = {}
            for part in gather_object([bad]):
                for name, step in part.items():
                    merged[name] = min(step, merged.get(name, step))
            bad = merged
        if not bad:
            return None
        first = min(bad.values())
        return first, sorted(name for name, step in bad.items() if step == first)


def weights_are_finite(modules) -> bool:
    """Whether every parameter and buffer of `modules` is finite (one sync)."""
    checks = [
        torch.isfinite(tensor).all()
        for module in modules
        for tensor in (*module.parameters(), *module.buffers())
        if tensor.is_floating_point()
    ]
    return bool(torch.stack(checks).all()) if checks else True


def divergence_message(step: int | None, names: list[str], training, last_checkpoint: str | None) -> str:
    """The one sentence of a diverged run: the step, what diverged, the checkpoint kept, what to try."""
    if step is None:  # every logged value was finite, the weights are not
        what = "the weights became NaN or infinite"
    else:
        what = f"at step {step}, {' and '.join(names)} became NaN or infinite"
    kept = (
        f"the last good checkpoint, {last_checkpoint}, is kept"
        if last_checkpoint
        else f"no checkpoint was written before it (training.checkpoint_every={training.checkpoint_every})"
    )
    tries = [f"lower training.learning_rate (now {training.learning_rate:g})"]
    if training.max_grad_norm is None:
        tries.append("set training.max_grad_norm (e.g. 1.0)")
    if training.mixed_precision != "no":
        tries.append("train with training.mixed_precision=no")
    advice = tries[0] if len(tries) == 1 else f"{', '.join(tries[:-1])} or {tries[-1]}"
    return (
        f"Training diverged: {what}, so the run stopped without saving a model; {kept}; {advice}, then start "
        "again in a new output_dir or with --set training.overwrite_output_dir=true."
    )


def _all_processes(accelerator, flag: bool) -> bool:
    """`flag` on every process (so that all of them stop together, or none)."""
    if accelerator.num_processes == 1:
        return flag
    agreed = accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), "sum")
    return bool(agreed.item() == accelerator.num_processes)


def raise_if_diverged(guard: DivergenceGuard, accelerator, training, checkpoints, modules=None) -> None:
    """Raises TrainingDiverged when a watched value, or (with `modules`) a weight, is not finite."""
    found = guard.first_divergence(accelerator)
    if found is not None:
        step, names = found
    elif modules is not None and not _all_processes(accelerator, weights_are_finite(modules)):
        step, names = None, []
    else:
        return
    last = checkpoints[-1][1] if checkpoints else None
    raise TrainingDiverged(divergence_message(step, names, training, last))
