"""The pieces a multi-task Seq2SeqModel puts in its backbone per task: the placeholder that stands in a slot while
no task is installed, and the per-task LoRA update of a shared linear layer."""

from __future__ import annotations

import torch
from torch import nn


class Seq2SeqTaskSlot(nn.Module):
    """
    Stands in the backbone for a per-task part while no task is installed, so each parameter is registered once
    (under `task_parts`); running it means the backbone was called without `task=`.
    """

    def _missing_task(self, *args, **kwargs):
        raise RuntimeError(
            "This part of the backbone is per task: call the Seq2SeqModel with task=..., not the bare backbone."
        )

    forward = __iter__ = __len__ = __getitem__ = _missing_task

    def __bool__(self) -> bool:  # `if module:` must not reach `__len__`
        return True


class Seq2SeqLoRA(nn.Module):
    """One task's low-rank update of one linear layer: `x -> B(A(x)) * alpha / rank`, starting at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, device=base.weight.device, dtype=base.weight.dtype)
        self.lora_B = nn.Linear(
            rank, base.out_features, bias=False, device=base.weight.device, dtype=base.weight.dtype
        )
        self.scaling = alpha / rank
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.lora_A.weight, a=5**0.5)
            nn.init.zeros_(self.lora_B.weight)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lora_B(self.lora_A(hidden)) * self.scaling  # (..., in) -> (..., out)


class Seq2SeqLoRALinear(nn.Module):
    """A shared linear layer plus one task's [`Seq2SeqLoRA`]; built on the fly while a task is installed."""

    def __init__(self, base: nn.Linear, lora: Seq2SeqLoRA):
        super().__init__()
        self.base, self.lora = base, lora

    # Backbones read these off their linear layers (e.g. T5 checks `wo.weight.dtype`).
    weight = property(lambda self: self.base.weight)
    bias = property(lambda self: self.base.bias)
    in_features = property(lambda self: self.base.in_features)
    out_features = property(lambda self: self.base.out_features)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.base(hidden) + self.lora(hidden)


def get_submodule_parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, name = path.rpartition(".")
    return (root.get_submodule(parent_path) if parent_path else root), name


__all__ = ["Seq2SeqLoRA", "Seq2SeqLoRALinear", "Seq2SeqTaskSlot", "get_submodule_parent"]
