"""Partial parameter transfer: copy what fits from a source model into a target model, and report what happened.

Transfer works across architecture changes (another depth, another number of classes) and vocabulary changes (the
rows of tokens both vocabularies share are copied into every embedding-like tensor), and says for each tensor what it
did in a [`TransferReport`], which runs save as `transfer_report.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .naming import check_patterns, is_encoder_decoder, matches, unused_patterns

STATUSES = ("copied", "remapped", "initialised", "skipped")
EXCLUDED_BY_PATTERN = "excluded by pattern"
_SPECTRAL_NORM_VECTORS = (".parametrizations.weight.0._u", ".parametrizations.weight.0._v")


@dataclass
class TransferEntry:
    """What happened to one tensor.

    Args:
        name: the target's name for the tensor (the source's name for `skipped` ones).
        status: `copied` (whole tensor), `remapped` (vocabulary rows of shared tokens), `initialised` (kept the
            target's initialisation) or `skipped` (only in the source).
        reason: why, for anything but a plain copy.
        source_shape / target_shape: the shapes, `None` where the tensor does not exist.
        numel: elements of the target tensor (of the source tensor for `skipped` entries).
        transferred: elements that now hold source values (`numel` when copied, the copied rows when remapped).
        kind: `parameter` or `buffer` (the target's), `None` for `skipped` entries.
        aliases: the other names of a tied tensor (e.g. `backbone.lm_head.weight` for the shared embeddings).
    """

    name: str
    status: str
    reason: str = ""
    source_shape: tuple[int, ...] | None = None
    target_shape: tuple[int, ...] | None = None
    numel: int = 0
    transferred: int = 0
    kind: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass
class TransferReport:
    """One [`TransferEntry`] per target tensor (tied tensors once) plus one per source-only tensor."""

    entries: list[TransferEntry] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many tensors got each status (every status present, zeros included)."""
        counts = dict.fromkeys(STATUSES, 0)
        for entry in self.entries:
            counts[entry.status] += 1
        return counts

    def by_status(self, status: str) -> list[TransferEntry]:
        return [entry for entry in self.entries if entry.status == status]

    def __getitem__(self, name: str) -> TransferEntry:
        """The entry of a tensor, by its name or any of its tied aliases."""
        for entry in self.entries:
            if entry.name == name or name in entry.aliases:
                return entry
        raise KeyError(f"No tensor named {name!r} in this transfer report.")

    def transferred_fraction(self) -> float:
        """Fraction of the target's parameter elements (buffers left out) that now hold source values."""
        parameters = [entry for entry in self.entries if entry.kind == "parameter"]
        total = sum(entry.numel for entry in parameters)
        return sum(entry.transferred for entry in parameters) / total if total else 0.0

    def summary(self) -> str:
        counts = self.counts()
        parameters = [entry for entry in self.entries if entry.kind == "parameter"]
        transferred = sum(entry.transferred for entry in parameters)
        total = sum(entry.numel for entry in parameters)
        return (
            ", ".join(f"{status} {count}" for status, count in counts.items())
            + f" | {self.transferred_fraction():.1%} of target parameters transferred ({transferred:,} of {total:,})"
        )

    def to_dict(self) -> dict:
        entries = []
        for entry in self.entries:
            values = asdict(entry)
            for key in ("source_shape", "target_shape", "aliases"):
                values[key] = list(values[key]) if values[key] is not None else None
            entries.append(values)
        return {"counts": self.counts(), "transferred_fraction": self.transferred_fraction(), "entries": entries}

    def save_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.to_dict(), file, indent=2)
            file.write("\n")

    def format_table(self) -> str:
        """One line per tensor (status, name, source and target shapes, elements, reason), then the summary line."""

        def shape(value):
            return "-" if value is None else _format_shape(tuple(value))

        rows = [("status", "name", "source", "target", "numel", "reason")]
        rows += [
            (
                entry.status,
                entry.name,
                shape(entry.source_shape),
                shape(entry.target_shape),
                f"{entry.numel:,}",
                entry.reason,
            )
            for entry in self.entries
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(5)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5] for row in rows]
        return "\n".join(line.rstrip() for line in lines) + "\n" + self.summary()

    def __str__(self) -> str:
        return self.format_table()


# --------------------------------------------------------------------------------------------------------------------
# Vocabulary changes


def _embedding_like(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> dict[int, int]:
    """`id(tensor) -> vocabulary dimension` for the token embeddings (the model's, and the encoder's and decoder's
    when they are separate tensors), the output embeddings and their bias, and BART's `final_logits_bias`."""
    modules = []
    for owner, getter in ((model, "get_input_embeddings"), (model, "get_output_embeddings")):
        modules.append(_call(owner, getter))
    if is_encoder_decoder(model):
        for stack in (_call(model, "get_encoder"), _call(model, "get_decoder")):
            modules.append(_call(stack, "get_input_embeddings") if stack is not None else None)
    vocabulary_dims = {}
    for module in modules:
        if isinstance(module, nn.Module):
            for name in ("weight", "bias"):
                tensor = getattr(module, name, None)
                if isinstance(tensor, torch.Tensor):
                    vocabulary_dims[id(tensor)] = 0
    for name, tensor in tensors.items():
        if name.endswith("final_logits_bias"):  # BART: (1, vocab_size)
            vocabulary_dims[id(tensor)] = tensor.dim() - 1
    return vocabulary_dims


def _call(owner: nn.Module, getter: str):
    try:
        return getattr(owner, getter)()
    except (AttributeError, NotImplementedError, TypeError):
        return None


def _row_pairs(source_tokenizer, target_tokenizer, source_rows: int, target_rows: int):
    """(target ids, source ids) of the tokens both vocabularies hold: by token string with tokenizers, else by id."""
    if source_tokenizer is None:
        count = min(source_rows, target_rows)
        return torch.arange(count), torch.arange(count)
    source_vocab = source_tokenizer.get_vocab()
    pairs = sorted(
        (target_id, source_vocab[token])
        for token, target_id in target_tokenizer.get_vocab().items()
        if token in source_vocab and target_id < target_rows and source_vocab[token] < source_rows
    )
    target_ids = torch.tensor([pair[0] for pair in pairs], dtype=torch.long)
    source_ids = torch.tensor([pair[1] for pair in pairs], dtype=torch.long)
    return target_ids, source_ids


def _same_vocabulary(source_tokenizer, target_tokenizer) -> bool:
    return source_tokenizer is None or source_tokenizer.get_vocab() == target_tokenizer.get_vocab()


# --------------------------------------------------------------------------------------------------------------------
# Transfer


def _shape(tensor: torch.Tensor | None) -> tuple[int, ...] | None:
    return None if tensor is None else tuple(tensor.shape)


def _format_shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


@torch.no_grad()
def transfer_parameters(
    source: nn.Module | Mapping[str, torch.Tensor],
    target: nn.Module,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    source_tokenizer=None,
    target_tokenizer=None,
) -> TransferReport:
    """Copy into `target` (in place) every tensor of `source` that matches by name and shape, and report on each.

    Parameters and buffers are both transferred (e.g. the spectral-norm power-iteration vectors `..._u`/`..._v` of a
    GAN discriminator, BART's `final_logits_bias`). Tied tensors are handled once, under their first name, and stay
    tied: the copy writes into the shared tensor.

    Vocabulary changes: with both tokenizers, or when an embedding-like tensor (input embeddings, tied or untied
    output embeddings, BART's `final_logits_bias` columns) differs from the source only in its vocabulary dimension,
    the rows of the tokens present in both vocabularies are copied (matched by token string with tokenizers, by id
    without them: the target vocabulary is then assumed to extend or truncate the source one, as with
    `resize_token_embeddings`); the other rows keep the target's initialisation.

    Args:
        source: a model or a state dict (e.g. `safetensors.torch.load_file(...)`) with the target's naming.
        target: the model to fill.
        include: glob patterns on the target's names (see `hf_genxfer.transfer.naming`); only matching tensors are
            copied, the others keep their initialisation ("excluded by pattern"). A tied tensor matches when any of
            its names does (BART's shared embeddings match `backbone.model.encoder.*`).
        exclude: glob patterns of tensors to keep initialised, applied after `include`.
        source_tokenizer / target_tokenizer: the two vocabularies, to copy embedding rows by token (both or neither).

    Returns:
        A [`TransferReport`]: `copied`, `remapped`, `initialised` (with the reason: "not in source", "excluded by
        pattern", "shape (10, 32) in source vs (5, 32) in target", ...) and `skipped` ("not in target").

    Example:
    ```python
    >>> source = GANModel.from_pretrained("runs/digits-0-4", use_safetensors=True)  # 5 classes
    >>> target = GANModel(GANConfig(image_size=8, num_classes=10))
    >>> report = transfer_parameters(source, target)  # class embeddings stay initialised
    >>> report.save_json("runs/digits-5-9/transfer_report.json")
    >>> print(report.format_table())
    ```
    """
    if (source_tokenizer is None) != (target_tokenizer is None):
        raise ValueError("Pass both `source_tokenizer` and `target_tokenizer` to remap a vocabulary, or neither.")
    include = check_patterns(include, "include")
    exclude = check_patterns(exclude, "exclude")
    source_state = source.state_dict() if isinstance(source, nn.Module) else dict(source)

    # 1. group the target's tensors: tied names share one tensor and get one entry
    target_tensors = target.state_dict(keep_vars=True)
    parameter_ids = {id(parameter) for parameter in target.parameters()}
    groups: dict[int, list[str]] = {}
    for name, tensor in target_tensors.items():
        groups.setdefault(id(tensor), []).append(name)
    vocabulary_dims = _embedding_like(target, target_tensors)
    same_vocabulary = _same_vocabulary(source_tokenizer, target_tokenizer)
    for argument, patterns in (("include", include), ("exclude", exclude)):
        unused = unused_patterns(patterns or [], target_tensors)
        if unused:
            raise ValueError(
                f"`{argument}` pattern(s) {', '.join(map(repr, unused))} match no tensor of {type(target).__name__} "
                f"(names look like {next(iter(target_tensors))!r})."
            )

    # 2. decide, for each target tensor, to copy, remap or keep it
    entries: dict[str, TransferEntry] = {}
    sources: dict[str, torch.Tensor] = {}  # target name -> the source tensor to copy or remap from
    used_source_names: set[str] = set()
    for tensor_id, names in groups.items():
        name, tensor = names[0], target_tensors[names[0]]
        entry = TransferEntry(
            name=name,
            status="initialised",
            target_shape=_shape(tensor),
            numel=tensor.numel(),
            kind="parameter" if tensor_id in parameter_ids else "buffer",
            aliases=tuple(names[1:]),
        )
        entries[name] = entry
        source_name = next((alias for alias in names if alias in source_state), None)
        used_source_names.update(alias for alias in names if alias in source_state)
        if source_name is not None:
            entry.source_shape = _shape(source_state[source_name])
        if (include is not None and not any(matches(alias, include) for alias in names)) or (
            exclude is not None and any(matches(alias, exclude) for alias in names)
        ):
            entry.reason = EXCLUDED_BY_PATTERN
        elif source_name is None:
            entry.reason = "not in source"
        else:
            source_tensor = source_state[source_name]
            vocabulary_dim = vocabulary_dims.get(tensor_id)
            if vocabulary_dim is not None and not (same_vocabulary and source_tensor.shape == tensor.shape):
                other_dims = [size for dim, size in enumerate(tensor.shape) if dim != vocabulary_dim]
                source_other_dims = [size for dim, size in enumerate(source_tensor.shape) if dim != vocabulary_dim]
                if source_tensor.dim() == tensor.dim() and other_dims == source_other_dims:
                    entry.status = "remapped"
            elif source_tensor.shape == tensor.shape:
                entry.status = "copied"
            if entry.status == "initialised":
                entry.reason = (
                    f"shape {_format_shape(tuple(source_tensor.shape))} in source vs "
                    f"{_format_shape(tuple(tensor.shape))} in target"
                )
            else:
                sources[name] = source_tensor

    # 3. spectral norm: power-iteration vectors only make sense next to the weight they were estimated for
    for name, entry in entries.items():
        suffix = next((suffix for suffix in _SPECTRAL_NORM_VECTORS if name.endswith(suffix)), None)
        weight = entries.get(name[: -len(suffix)] + ".parametrizations.weight.original") if suffix else None
        if entry.status == "copied" and weight is not None and weight.status != "copied":
            entry.status, entry.reason = "initialised", f"kept with its weight {weight.name}, which was not copied"
            del sources[name]

    # 4. write into the target's tensors in place (tied names share the tensor, so they stay tied)
    for name, source_tensor in sources.items():
        entry, tensor = entries[name], target_tensors[name]
        if entry.status == "copied":
            tensor.copy_(source_tensor)
            entry.transferred = tensor.numel()
        else:
            _remap_rows(entry, source_tensor, tensor, vocabulary_dims[id(tensor)], source_tokenizer, target_tokenizer)

    report = TransferReport(list(entries.values()))
    for name, tensor in source_state.items():
        if name not in used_source_names:
            report.entries.append(
                TransferEntry(
                    name=name,
                    status="skipped",
                    reason="not in target",
                    source_shape=_shape(tensor),
                    numel=tensor.numel(),
                )
            )
    return report


def _remap_rows(
    entry: TransferEntry, source: torch.Tensor, target: torch.Tensor, dim: int, source_tokenizer, target_tokenizer
):
    """Copy the vocabulary rows (along `dim`) of the tokens both vocabularies hold; the others keep their values."""
    source_rows, target_rows = source.shape[dim], target.shape[dim]
    target_ids, source_ids = _row_pairs(source_tokenizer, target_tokenizer, source_rows, target_rows)
    values = source.to(device=target.device, dtype=target.dtype).index_select(dim, source_ids.to(target.device))
    target.index_copy_(dim, target_ids.to(target.device), values)
    entry.transferred = len(target_ids) * (target.numel() // target_rows)
    kept = target_rows - len(target_ids)
    how = "by token" if source_tokenizer is not None else "by id (no tokenizers given)"
    entry.reason = (
        f"vocabulary {source_rows} -> {target_rows}: {len(target_ids)} shared token rows copied {how}, "
        f"{kept} new row(s) keep their initialisation"
    )


__all__ = ["STATUSES", "TransferEntry", "TransferReport", "transfer_parameters"]
