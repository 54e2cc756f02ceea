"""The pieces a multi-task Seq2SeqModel puts in its backbone per task: the placeholder that stands in a slot while
no task is installed, and the per-task LoRA update of a shared linear layer."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def backbone_generation_config(backbone: nn.Module, generation_config) -> Iterator[None]:
    """The wrapper's generation config in the backbone for the block, so that the backbone's own `generate` follows it
    (passing it as `generation_config=` beside other generation arguments is deprecated in transformers 5)."""
    resting = backbone.generation_config
    backbone.generation_config = generation_config
    try:
        yield
    finally:
        backbone.generation_config = resting


def compiled_decoding(model: nn.Module, kwargs: dict) -> dict:
    """
    `generate(compile=True)`: transformers' own compiled decoding, a static cache with the decoding step through
    `torch.compile`, which transformers turns on by itself only on accelerators. Greedy decoding of the demo's BART on 2
    CPU threads: 1.72x eager at batch 1, 1.43x at batch 32, the same tokens (2026-12-03; `genxfer bench speed`
    measures it as "compiled"); the first call compiles (about 10 s). transformers compiles no beam search, so beam
    search stays eager (a static cache alone made it 0.87x). The caller's own generation arguments win.
    """
    from transformers.generation import CompileConfig

    num_beams = kwargs.get("num_beams", model.generation_config.num_beams) or 1
    if num_beams > 1:
        warnings.warn(
            "generate(compile=True) compiles greedy and sampling decoding; beam search runs eagerly.", stacklevel=3
        )
        return kwargs
    device = next(model.parameters()).device
    config = CompileConfig(dynamic=False, mode="reduce-overhead" if device.type == "cuda" else "default")
    if device.type not in ("cuda", "xpu"):
        config._compile_all_devices = True  # transformers' switch for compiling on other devices
    return {"cache_implementation": "static", "compile_config": config, **kwargs}


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


def generate_mixed_tasks(model, inputs, tasks: list[str], *args, **kwargs) -> torch.LongTensor:
    """A multi-task Seq2SeqModel's `generate` over a batch of mixed tasks: one generate per task over its examples,
    rows padded with the pad token and returned in input order."""
    if kwargs.get("return_dict_in_generate"):
        raise ValueError(
            "return_dict_in_generate=True needs one task per call with per-task parts: call generate once per "
            "task, or pass a single task name."
        )
    batch_size = len(tasks)
    pad_token_id = model.generation_config.pad_token_id
    if pad_token_id is None:
        pad_token_id = model.config.pad_token_id or 0
    per_example = {
        key: value
        for key, value in kwargs.items()
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch_size
    }
    shared = {key: value for key, value in kwargs.items() if key not in per_example}
    if inputs is None:
        inputs = per_example.pop("input_ids")
    pieces = []
    for name in dict.fromkeys(tasks):  # first-seen order
        rows = torch.tensor([index for index, each in enumerate(tasks) if each == name], device=inputs.device)
        sub = {key: value.index_select(0, rows.to(value.device)) for key, value in per_example.items()}
        with model.task_parts_installed(name):
            out = model.backbone_generate(inputs.index_select(0, rows), *args, **sub, **shared)
        pieces.append((rows, out))
    per_input = pieces[0][1].shape[0] // len(pieces[0][0])  # num_return_sequences
    length = max(out.shape[1] for _, out in pieces)
    result = torch.full((batch_size * per_input, length), pad_token_id, dtype=pieces[0][1].dtype)
    result = result.to(inputs.device)
    for rows, out in pieces:
        targets = (rows[:, None] * per_input + torch.arange(per_input, device=rows.device)).reshape(-1)
        result[targets, : out.shape[1]] = out
    return result


__all__ = [
    "Seq2SeqLoRA",
    "Seq2SeqLoRALinear",
    "Seq2SeqTaskSlot",
    "backbone_generation_config",
    "compiled_decoding",
    "generate_mixed_tasks",
    "get_submodule_parent",
]
