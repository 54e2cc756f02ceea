"""Target-matching regularisers: keep fine-tuned weights near the source ones (L2-SP) or near them where it mattered
to the source task (EWC), as extra loss terms the training loop adds before `backward`.

Both work on parameters by name as `model.named_parameters()` gives them, so a spectral-normed weight is regularised
through its trainable `...parametrizations.weight.original`, the tensor the optimizer actually moves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .naming import check_patterns, matches, unused_patterns


class _AnchoredPenalty(nn.Module):
    """Holds `(parameter, anchor, importance)` triples; the penalty is `weight/2 * sum importance * (p - anchor)^2`."""

    def __init__(
        self,
        model: nn.Module,
        source_state: Mapping[str, torch.Tensor] | None,
        weight: float,
        include: str | Iterable[str] | None,
        importance: Mapping[str, torch.Tensor] | None,
    ):
        super().__init__()
        if not weight >= 0:
            raise ValueError(f"`weight` must be a non-negative number, got {weight!r}.")
        self.weight = float(weight)
        include = check_patterns(include, "include")
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if include is not None:
            unused = unused_patterns(include, [name for name, _ in named])
            if unused:
                raise ValueError(
                    f"`include` pattern(s) {', '.join(map(repr, unused))} match no trainable parameter of "
                    f"{type(model).__name__}."
                )
            named = [(name, p) for name, p in named if matches(name, include)]
        # Parameters are held in a plain list, not registered: the model's parameters are not this module's.
        self._parameters_list: list[nn.Parameter] = []
        self.names: list[str] = []
        self.skipped: dict[str, str] = {}
        for name, parameter in named:
            if importance is not None and name not in importance:
                self.skipped[name] = "no Fisher information"
                continue
            if source_state is None:
                anchor = parameter.detach().clone()
            elif name not in source_state:
                self.skipped[name] = "not in source"
                continue
            elif source_state[name].shape != parameter.shape:
                self.skipped[name] = (
                    f"shape {tuple(source_state[name].shape)} in source vs {tuple(parameter.shape)} in the model"
                )
                continue
            else:
                anchor = source_state[name].detach().to(device=parameter.device, dtype=parameter.dtype).clone()
            index = len(self.names)
            self.register_buffer(f"anchor_{index}", anchor, persistent=False)
            if importance is not None:
                if importance[name].shape != parameter.shape:
                    raise ValueError(
                        f"Fisher information for {name} has shape {tuple(importance[name].shape)}, "
                        f"the parameter {tuple(parameter.shape)}."
                    )
                self.register_buffer(
                    f"importance_{index}", importance[name].detach().to(anchor.device, anchor.dtype), persistent=False
                )
            self._parameters_list.append(parameter)
            self.names.append(name)
        if not self.names:
            raise ValueError(
                f"No trainable parameter of {type(model).__name__} to regularise: {self.skipped or 'none'}."
            )

    def penalty(self) -> torch.Tensor:
        """The penalty as a scalar tensor, differentiable w.r.t. the model's parameters (0 at the anchors)."""
        total = None
        for index, parameter in enumerate(self._parameters_list):
            anchor = getattr(self, f"anchor_{index}")
            if anchor.device != parameter.device:  # the model moved after construction (e.g. accelerate.prepare)
                self.to(parameter.device)
                anchor = getattr(self, f"anchor_{index}")
            squared = (parameter - anchor).pow(2)
            importance = getattr(self, f"importance_{index}", None)
            term = (squared * importance).sum() if importance is not None else squared.sum()
            total = term if total is None else total + term
        return self.weight / 2 * total

    def forward(self) -> torch.Tensor:
        return self.penalty()


class L2SP(_AnchoredPenalty):
    """L2-SP (Li et al., 2018): `weight/2 * sum ||theta - theta_source||^2` over the chosen trainable parameters.

    Args:
        model: the model being fine-tuned.
        source_state: the starting point (a state dict with the model's names); by default a snapshot of the
            model's parameters now, so build it right after loading the source weights. Parameters missing from it
            or shaped differently (e.g. a new class embedding) are left out and listed in `.skipped`.
        weight: the penalty's strength (`alpha` in the paper).
        include: glob patterns of parameter names to regularise (default: every trainable parameter).

    Example:
    ```python
    >>> l2sp = L2SP(model.generator, weight=0.01)  # right after transfer_parameters(...)
    >>> loss = generator_loss + l2sp.penalty()
    ```
    """

    def __init__(
        self,
        model: nn.Module,
        source_state: Mapping[str, torch.Tensor] | None = None,
        weight: float = 0.01,
        include: str | Iterable[str] | None = None,
    ):
        super().__init__(model, source_state, weight, include, importance=None)


class EWC(_AnchoredPenalty):
    """Elastic weight consolidation (Kirkpatrick et al., 2017): `weight/2 * sum F * (theta - theta_source)^2`.

    Args:
        model: the model being fine-tuned.
        fisher: diagonal Fisher information by parameter name, from [`estimate_fisher`] on the source task;
            only these parameters are regularised.
        source_state: the source weights; by default a snapshot of the model's parameters now.
        weight: the penalty's strength (`lambda` in the paper).
    """

    def __init__(
        self,
        model: nn.Module,
        fisher: Mapping[str, torch.Tensor],
        source_state: Mapping[str, torch.Tensor] | None = None,
        weight: float = 1.0,
    ):
        super().__init__(model, source_state, weight, include=None, importance=fisher)


def estimate_fisher(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    batches: Iterable,
    parameters: str | Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher information: the mean over `batches` of the squared gradient of `loss_fn(model, b)`.

    Gradients come from `torch.autograd.grad`, so the parameters' `.grad` are left alone; the model's train/eval
    mode is the caller's (eval turns dropout off).

    Args:
        loss_fn: `loss_fn(model, batch) -> scalar tensor`, e.g. `lambda m, b: m(**b).loss` for a Seq2Seq model.
        batches: an iterable of batches from the source task.
        parameters: glob patterns of parameter names (default: every trainable parameter).

    Returns:
        `{name: tensor}` with each parameter's shape, all values >= 0, on the parameters' devices.
    """
    patterns = check_patterns(parameters, "parameters")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if patterns is not None:
        unused = unused_patterns(patterns, [name for name, _ in named])
        if unused:
            raise ValueError(f"`parameters` pattern(s) {', '.join(map(repr, unused))} match no trainable parameter.")
        named = [(name, p) for name, p in named if matches(name, patterns)]
    if not named:
        raise ValueError(f"{type(model).__name__} has no trainable parameter to estimate Fisher information for.")
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in named}
    count = 0
    for batch in batches:
        loss = loss_fn(model, batch)
        gradients = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        for (name, _), gradient in zip(named, gradients):
            if gradient is not None:
                fisher[name] += gradient.detach().float().pow(2)
        count += 1
    if count == 0:
        raise ValueError("`batches` is empty: Fisher information needs at least one batch.")
    return {name: value / count for name, value in fisher.items()}


def save_fisher(fisher: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Save Fisher information to a safetensors file."""
    save_file({name: value.detach().cpu().contiguous() for name, value in fisher.items()}, str(path))


def load_fisher(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load Fisher information saved by [`save_fisher`]."""
    return load_file(str(path), device=str(device))


__all__ = ["EWC", "L2SP", "estimate_fisher", "load_fisher", "save_fisher"]
