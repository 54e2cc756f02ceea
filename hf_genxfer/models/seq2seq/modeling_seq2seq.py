"""The Seq2Seq model: any transformers encoder-decoder (BART, T5, Marian, ...) behind one Hugging Face model class.

The wrapper owns the backbone as `self.backbone`; the multi-task sharing modes keep each task's own parts next to it
in `task_parts`, so `generate`, `save_pretrained` and the Auto classes keep working as for the bare backbone.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForSeq2SeqLM, EncoderDecoderModel, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_seq2seq import Seq2SeqConfig, decoder_layer_count
from .task_parts import (
    Seq2SeqLoRA,
    Seq2SeqLoRALinear,
    Seq2SeqTaskSlot,
    backbone_generation_config,
    compiled_decoding,
    generate_mixed_tasks,
    get_submodule_parent,
)
from .task_tokens import add_task_tokens

ROUTED_MODES = ("shared_encoder", "shared_structure")  # the modes with per-task parts in `task_parts`
CONFIG_FIELDS = (
    "task_names",
    "sharing",
    "task_token_ids",
    "task_specific",
    "task_specific_layers",
    "lora_rank",
    "lora_alpha",
    "lora_target_modules",
)


@dataclass
class Seq2SeqMultitaskLMOutput(Seq2SeqLMOutput):
    r"""
    task_losses (`dict[str, torch.FloatTensor]`, *optional*):
        With `labels`: each task's mean token loss over its own examples, for loss weighting. `loss` is the mean over
        all label tokens of the batch, as a single-task model computes it.
    """

    task_losses: dict[str, torch.FloatTensor] | None = None


class Seq2SeqModel(PreTrainedModel, GenerationMixin):
    r"""
    A transformers encoder-decoder wrapped as `self.backbone`; its forward pass returns the backbone's output.

    Multi-task (`config.sharing`, see [`Seq2SeqConfig`]): `forward` and `generate` take `task=` (a name, one name
    per example, or a tensor of task indices). With per-task parts ("shared_encoder", "shared_structure") each task's
    copy lives in `task_parts[task]` and the backbone's slot for it holds a parameter-free [`Seq2SeqTaskSlot`], so
    every parameter is registered once (per-task LoRA keeps the shared base layers in the backbone under their
    single-task names and only the adapters in `task_parts`); a forward pass installs the task's parts (pointer swaps,
    not thread-safe across concurrent forwards of one model), runs it, and puts the slots back. A batch that mixes
    tasks is split by task; `loss` is the mean over all label tokens and `task_losses` holds each task's mean.
    Tasks whose parts a step does not use get no gradient: under DDP use `find_unused_parameters=True`.

    Example:

    ```python
    >>> from hf_genxfer.models.seq2seq import Seq2SeqModel
    >>> model = Seq2SeqModel.from_backbone("path/to/bart-or-t5")  # keeps the pretrained weights
    >>> outputs = model.generate(input_ids, num_beams=2, max_new_tokens=20)
    >>> multi = Seq2SeqModel.from_backbone("path/to/bart-or-t5", task_names=["en", "fr"], sharing="shared_encoder")
    >>> loss = multi(input_ids, labels=labels, task=["en", "fr"]).loss  # one task per example
    >>> outputs = multi.generate(input_ids, task="fr", num_beams=2, max_new_tokens=20)
    ```
    """

    config_class = Seq2SeqConfig
    config: Seq2SeqConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    # Set per instance to the backbone's tied parameters seen from here, e.g. for BART
    # {"backbone.lm_head.weight": "backbone.model.shared.weight", ...}. The backbone ties them itself; `post_init`
    # collects its keys into `all_tied_weights_keys`, which saving and loading use.
    _tied_weights_keys: dict[str, str] = {}

    def __init__(self, config: Seq2SeqConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        if backbone is None:
            backbone = AutoModelForSeq2SeqLM.from_config(config.backbone)
        elif backbone.config is not config.backbone:
            raise ValueError("`backbone` must be built from `config.backbone`; use `Seq2SeqModel.from_backbone`.")
        self.backbone = backbone
        # One config object: what the backbone changes (e.g. a resized vocabulary) is what `save_pretrained` writes.
        config.backbone = backbone.config
        # Paths (in the backbone) of the parts each task owns; their slots in the backbone hold placeholders and
        # every task's copy lives in `task_parts[task][key]`, so each parameter is registered exactly once.
        self._task_part_paths = self._find_task_part_paths()
        if self._task_part_paths:
            if config.task_specific == "lora" and config.sharing == "shared_structure":
                # The base layers stay in the backbone (shared); each task owns only its adapters.
                initial_parts = nn.ModuleDict(
                    {
                        self._part_key(path): Seq2SeqLoRA(
                            backbone.get_submodule(path), config.lora_rank, config.lora_alpha
                        )
                        for path in self._task_part_paths
                    }
                )
            else:
                if "lm_head" in self._task_part_paths:
                    self._untie_output_embeddings()
                initial_parts = self._take_task_parts_from_backbone()
            self.task_parts = nn.ModuleDict(
                {task: copy.deepcopy(initial_parts) for task in config.task_names}  # same initial weights
            )
        self._tied_weights_keys = {
            f"backbone.{target}": f"backbone.{source}" for target, source in backbone.all_tied_weights_keys.items()
        }
        # Generation defaults (decoder_start_token_id, pad, eos, bos, ...) are the backbone's own.
        self.generation_config = copy.deepcopy(backbone.generation_config)
        self.post_init()

    @classmethod
    def from_backbone(cls, backbone: str | os.PathLike | PreTrainedModel, **kwargs) -> Seq2SeqModel:
        """Wrap a pretrained encoder-decoder, keeping its weights and generation defaults.

        Args:
            backbone: a local folder or Hub id loaded with `AutoModelForSeq2SeqLM.from_pretrained`, or a model
                already built (used as is, not copied).
            kwargs: `Seq2SeqConfig` fields (`task_names`, `sharing`, `task_specific`, ...); the rest go to
                `from_pretrained`. Per-task parts start as copies of the pretrained ones.
        """
        config_fields = {name: kwargs.pop(name) for name in CONFIG_FIELDS if name in kwargs}
        if not isinstance(backbone, PreTrainedModel):
            backbone = AutoModelForSeq2SeqLM.from_pretrained(backbone, **kwargs)
        elif kwargs:
            raise TypeError(f"Unexpected arguments for an already built backbone: {', '.join(kwargs)}.")
        config = Seq2SeqConfig(backbone=backbone.config, **config_fields)
        return cls(config, backbone=backbone)

    def _init_weights(self, module: nn.Module):
        # The backbone initialises (or loads) its own weights; task parts start as copies of its parts.
        pass

    # ----- per-task parts (sharing="shared_encoder" / "shared_structure") -----

    def _find_task_part_paths(self) -> list[str]:
        """Paths in the backbone of the modules each task owns, from `config.sharing` / `config.task_specific`."""
        config, backbone = self.config, self.backbone
        if config.sharing not in ROUTED_MODES:
            return []
        names = {module: name for name, module in backbone.named_modules()}
        decoder = backbone.get_decoder()
        decoder_path = names[decoder]
        if config.sharing == "shared_encoder":
            # The whole decoder but its token embedding, which stays shared with the encoder (and the LM head).
            decoder_embeddings = decoder.get_input_embeddings()
            return [
                f"{decoder_path}.{name}"
                for name, child in decoder.named_children()
                if child is not decoder_embeddings and next(child.parameters(), None) is not None
            ]
        if config.task_specific == "lora":
            # Every targeted linear layer of the encoder and decoder; the LM head stays as it is.
            head = backbone.get_output_embeddings()
            targets = config.lora_target_modules
            paths = [
                name
                for name, module in backbone.named_modules()
                if isinstance(module, nn.Linear)
                and module is not head
                and (targets is None or name.rpartition(".")[2] in targets)
            ]
            if not paths:
                raise ValueError(f"No linear layer of the backbone is named in `lora_target_modules` ({targets}).")
            return paths
        if config.task_specific == "lm_head":
            return [names[backbone.get_output_embeddings()]]
        layer_count = decoder_layer_count(config.backbone)
        layers = [
            name
            for name, child in decoder.named_children()
            if isinstance(child, nn.ModuleList) and len(child) == layer_count
        ]
        if len(layers) != 1:
            raise ValueError(f"Cannot find the decoder layers of a {config.backbone.model_type} backbone.")
        first = layer_count - config.task_specific_layers
        return [f"{decoder_path}.{layers[0]}.{index}" for index in range(first, layer_count)]

    @staticmethod
    def _part_key(path: str) -> str:
        return path.replace(".", "_")  # `nn.ModuleDict` keys cannot hold dots

    def _take_task_parts_from_backbone(self) -> nn.ModuleDict:
        """Moves the per-task modules out of the backbone (leaving placeholders) and returns them."""
        parts = nn.ModuleDict()
        for path in self._task_part_paths:
            parent, name = get_submodule_parent(self.backbone, path)
            parts[self._part_key(path)] = getattr(parent, name)
            setattr(parent, name, Seq2SeqTaskSlot())
        return parts

    def _untie_output_embeddings(self):
        # Each task gets its own output projection, starting from the shared (tied) embedding's weights.
        backbone = self.backbone
        output = backbone.get_output_embeddings()
        if output.weight is backbone.get_input_embeddings().weight:
            untied = nn.Linear(output.in_features, output.out_features, bias=output.bias is not None)
            untied.to(device=output.weight.device, dtype=output.weight.dtype)
            with torch.no_grad():
                untied.weight.copy_(output.weight)
                if output.bias is not None:
                    untied.bias.copy_(output.bias)
            backbone.set_output_embeddings(untied)
        head_path = self._task_part_paths[0]
        backbone._tied_weights_keys = {
            target: source
            for target, source in backbone.all_tied_weights_keys.items()
            if not target.startswith(f"{head_path}.") and not source.startswith(f"{head_path}.")
        }
        backbone.all_tied_weights_keys = dict(backbone._tied_weights_keys)

    @contextmanager
    def task_parts_installed(self, task: str) -> Iterator[None]:
        """Puts `task`'s parts into the backbone's slots (pointer swaps) for the duration of the block."""
        parts = self.task_parts[task]
        slots = [get_submodule_parent(self.backbone, path) for path in self._task_part_paths]
        resting = [getattr(parent, name) for parent, name in slots]
        lora = self.config.sharing == "shared_structure" and self.config.task_specific == "lora"
        try:
            for (parent, name), path, module in zip(slots, self._task_part_paths, resting):
                part = parts[self._part_key(path)]
                if lora:
                    part = Seq2SeqLoRALinear(module.base if isinstance(module, Seq2SeqLoRALinear) else module, part)
                setattr(parent, name, part)
            yield
        finally:
            for (parent, name), module in zip(slots, resting):
                setattr(parent, name, module)

    def add_task(self, name: str, init_from: str | None = None):
        """
        Adds a task to a (possibly trained) multi-task model: its parts are copies of `init_from`'s, or freshly
        initialised as in a new backbone when `init_from` is None. For sharing="hard" use [`add_task_tokens`].
        """
        names = self.config.task_names
        if self.config.sharing not in ROUTED_MODES:
            raise ValueError(
                f"add_task needs sharing='shared_encoder' or 'shared_structure', got {self.config.sharing!r} "
                "(for sharing='hard' use add_task_tokens)."
            )
        if not isinstance(name, str) or not name or name in names:
            raise ValueError(f"The new task needs a new non-empty name, got {name!r} (tasks: {', '.join(names)}).")
        if init_from is not None:
            self._check_task_name(init_from)
            parts = copy.deepcopy(self.task_parts[init_from])
        else:
            fresh = Seq2SeqModel(copy.deepcopy(self.config)).to(self.device, self.dtype)
            parts = fresh.task_parts[names[0]]
        self.task_parts[name] = parts.train(self.training)
        self.config.task_names = [*names, name]

    def start_task_from(self, new_task: str, existing: str) -> None:
        """
        Adding a task (`multitask.init_new_tasks_from`): its parts (decoder, top layers, LM head or adapters) start
        as copies of an existing task's; with sharing="hard", its task token's embedding row starts as the
        existing task's.
        """
        names = self.config.task_names or []
        for task in (existing, new_task):
            if task not in names:
                raise ValueError(
                    f"multitask.init_new_tasks_from names {task!r}, which is not one of the model's tasks {names}."
                )
        if self.config.sharing == "hard":
            token_ids = self.config.task_token_ids
            embeddings = self.get_input_embeddings().weight
            with torch.no_grad():
                embeddings[token_ids[names.index(new_task)]] = embeddings[token_ids[names.index(existing)]]
        else:
            self.init_task_from(new_task, existing)

    def init_task_from(self, task: str, source: str):
        """Copies `source`'s per-task weights into `task`'s (e.g. to start a new task from a related one)."""
        self._check_task_name(task)
        self._check_task_name(source)
        if self.config.sharing not in ROUTED_MODES:
            raise ValueError(f"init_task_from needs per-task parts, got sharing={self.config.sharing!r}.")
        self.task_parts[task].load_state_dict(self.task_parts[source].state_dict())

    # ----- task names -----

    def _check_task_name(self, task) -> None:
        if not isinstance(task, str) or task not in self.config.task_names:
            raise ValueError(f"Unknown task {task!r}: this model's tasks are {', '.join(self.config.task_names)}.")

    def resolve_tasks(self, task, batch_size: int) -> list[str]:
        """`task` (a name, a list of one name per example, or a tensor of task indices) -> (B,) task names."""
        names = self.config.task_names
        if task is None:
            raise ValueError(
                f"This model is multi-task (sharing={self.config.sharing!r}): pass task= one of {', '.join(names)}."
            )
        if isinstance(task, torch.Tensor):
            indices = task.reshape(-1).tolist()
            if any(not 0 <= index < len(names) for index in indices):
                raise ValueError(f"Task indices must lie in [0, {len(names) - 1}], got {indices}.")
            tasks = [names[index] for index in indices]
        else:
            tasks = [task] if isinstance(task, str) else list(task)
            for name in tasks:
                self._check_task_name(name)
        if len(tasks) == 1:
            tasks = tasks * batch_size
        elif len(tasks) != batch_size:
            raise ValueError(f"Pass one task or {batch_size} (one per example), got {len(tasks)}.")
        return tasks

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        return self.backbone.get_encoder()

    def get_decoder(self) -> nn.Module:
        return self.backbone.get_decoder()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.backbone.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.backbone.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module):
        self.backbone.set_output_embeddings(new_embeddings)

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, **kw):
        # The backbone knows its extra pieces (e.g. BART's final_logits_bias); it also updates `config.backbone`.
        if "lm_head" in getattr(self, "_task_part_paths", []):
            raise ValueError("Resize the vocabulary before building a model with per-task LM heads.")
        if isinstance(self.backbone, EncoderDecoderModel):
            # It refuses to resize itself; each side resizes its own (one tokenizer serves both sides here).
            self.backbone.encoder.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, **kw)
            return self.backbone.decoder.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, **kw)
        return self.backbone.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, **kw)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """
        Labels shifted right behind the decoder start token, with -100 as padding (what `DataCollatorForSeq2Seq`
        asks for): the backbone's own method where it has one, else the shift its forward applies to labels
        (M2M100/NLLB, Blenderbot and BlenderbotSmall have no such method).
        """
        own = getattr(self.backbone, "prepare_decoder_input_ids_from_labels", None)
        if own is not None:
            return own(labels)
        backbone = self.config.backbone
        shifted = labels.new_zeros(labels.shape)
        shifted[:, 1:] = labels[:, :-1].clone()
        shifted[:, 0] = backbone.decoder_start_token_id
        return shifted.masked_fill(shifted == -100, backbone.pad_token_id)  # (B, T)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        task: str | list[str] | torch.LongTensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""
        Same arguments as the backbone's forward; `labels` of shape (B, T) with -100 on padding give the loss.
        `past_key_values` is accepted as the older name of `cache`.

        task (`str`, `list[str]` or `torch.LongTensor` of shape `(B,)`, *optional*):
            The task of the batch or of each example, for the multi-task sharing modes (required there; a single-task
            model accepts any of its `task_names` and ignores it). With sharing="hard" it is used while encoding
            (the task token is prepended to `input_ids`/`inputs_embeds`) and, with `config.task_token_in_decoder`, at
            the decoder's first position (which takes the task token in place of whatever start token it holds).
        """
        kwargs.pop("return_dict", None)  # always a Seq2SeqLMOutput: `generate` and the training loop read fields
        inputs = dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )
        sharing = self.config.sharing
        if sharing == "single":
            if task is not None:
                for name in [task] if isinstance(task, str) else ([] if isinstance(task, torch.Tensor) else task):
                    self._check_task_name(name)
            return self.backbone(**inputs, return_dict=True)
        if sharing == "hard":
            return self._hard_forward(inputs, task)
        return self._routed_forward(inputs, task)

    def _batch_size(self, inputs: dict) -> int:
        for key in ("input_ids", "inputs_embeds", "decoder_input_ids", "decoder_inputs_embeds", "labels"):
            if inputs.get(key) is not None:
                return inputs[key].shape[0]
        return inputs["encoder_outputs"][0].shape[0]

    def _prepend_task_tokens(self, tasks: list[str], input_ids, inputs_embeds, attention_mask):
        """sharing="hard": each example's encoder input starts with its task's token."""
        device = (input_ids if input_ids is not None else inputs_embeds).device
        prefix = self._task_token_column(tasks, device)  # (B, 1)
        if input_ids is not None:
            input_ids = torch.cat([prefix, input_ids], dim=1)  # (B, S) -> (B, 1+S)
        else:
            prefix_embeds = self.get_input_embeddings()(prefix).to(inputs_embeds.dtype)
            inputs_embeds = torch.cat([prefix_embeds, inputs_embeds], dim=1)  # (B, S, D) -> (B, 1+S, D)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], 1), attention_mask], dim=1)
        return input_ids, inputs_embeds, attention_mask

    def _task_token_column(self, tasks: list[str], device) -> torch.LongTensor:
        """(B, 1): each example's task token, for sharing="hard"."""
        if self.config.task_token_ids is None:
            raise ValueError("sharing='hard' needs `config.task_token_ids`: call add_task_tokens(tokenizer, model).")
        token_ids = self.config.task_token_ids
        return torch.tensor([token_ids[self.config.task_names.index(name)] for name in tasks], device=device)[:, None]

    def _hard_forward(self, inputs: dict, task) -> Seq2SeqMultitaskLMOutput:
        tasks = None
        # task_token_in_decoder: decoder position 0 holds the task's token. It is put there whenever the task is
        # given and the decoder inputs start at position 0 (labels alone, or decoder inputs shifted behind
        # decoder_start_token_id by the backbone or `DataCollatorForSeq2Seq`); `generate` starts from it itself.
        cache = inputs["cache"]
        at_decoder_start = (
            self.config.task_token_in_decoder
            and inputs["decoder_inputs_embeds"] is None
            and (cache is None or cache.get_seq_length() == 0)
        )
        if inputs["encoder_outputs"] is None or (task is not None and at_decoder_start):
            tasks = self.resolve_tasks(task, self._batch_size(inputs))
        if inputs["encoder_outputs"] is None:
            inputs["input_ids"], inputs["inputs_embeds"], inputs["attention_mask"] = self._prepend_task_tokens(
                tasks, inputs["input_ids"], inputs["inputs_embeds"], inputs["attention_mask"]
            )
        if tasks is not None and at_decoder_start:
            labels, decoder_input_ids = inputs["labels"], inputs["decoder_input_ids"]
            if decoder_input_ids is None and labels is not None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)  # (B, T), shifted right
            if decoder_input_ids is not None:
                decoder_input_ids = decoder_input_ids.clone()
                decoder_input_ids[:, :1] = self._task_token_column(tasks, decoder_input_ids.device)
                inputs["decoder_input_ids"] = decoder_input_ids
        output = self.backbone(**inputs, return_dict=True)
        task_losses = None
        if output.loss is not None and tasks is not None:
            labels = inputs["labels"]
            token_losses = nn.functional.cross_entropy(
                output.logits.flatten(0, 1).float(), labels.flatten().to(output.logits.device), reduction="none"
            ).view(labels.shape)  # (B, T), 0 where labels are -100
            counted = labels != -100
            task_losses = {}
            for name in dict.fromkeys(tasks):
                rows = torch.tensor([row_task == name for row_task in tasks], device=labels.device)
                task_losses[name] = token_losses[rows].sum() / counted[rows].sum()
        return Seq2SeqMultitaskLMOutput(**output, task_losses=task_losses)

    def _routed_forward(self, inputs: dict, task) -> Seq2SeqMultitaskLMOutput:
        tasks = self.resolve_tasks(task, self._batch_size(inputs))
        names = list(dict.fromkeys(tasks))
        if len(names) == 1:
            with self.task_parts_installed(names[0]):
                output = self.backbone(**inputs, return_dict=True)
            task_losses = None if output.loss is None else {names[0]: output.loss}
            return Seq2SeqMultitaskLMOutput(**output, task_losses=task_losses)
        # A mixed batch: each task's rows run through its own parts only, then the rows are put back in place.
        if inputs["cache"] is not None or inputs["use_cache"]:
            raise ValueError("A batch that mixes tasks runs without a cache: pass one task, or use_cache=False.")
        inputs["use_cache"] = False
        encoder_outputs = inputs.pop("encoder_outputs")
        labels = inputs["labels"]
        logits = encoder_hidden = loss = None
        task_losses, total_tokens = {}, 0
        for name in names:
            rows = torch.tensor([row_task == name for row_task in tasks]).nonzero(as_tuple=True)[0].to(self.device)
            sub_inputs = {
                key: value[rows] if isinstance(value, torch.Tensor) and value.shape[:1] == (len(tasks),) else value
                for key, value in inputs.items()
            }
            if encoder_outputs is not None:
                sub_inputs["encoder_outputs"] = (encoder_outputs[0][rows],)
            with self.task_parts_installed(name):
                output = self.backbone(**sub_inputs, return_dict=True)
            if logits is None:
                logits = output.logits.new_empty((len(tasks), *output.logits.shape[1:]))
                hidden = output.encoder_last_hidden_state
                encoder_hidden = hidden.new_empty((len(tasks), *hidden.shape[1:]))
            logits = logits.index_copy(0, rows, output.logits)
            encoder_hidden = encoder_hidden.index_copy(0, rows, output.encoder_last_hidden_state)
            if output.loss is not None:
                task_losses[name] = output.loss
                tokens = (labels[rows] != -100).sum()
                if tokens > 0:  # the loss is the mean over all label tokens, as one model computes it
                    loss = output.loss * tokens if loss is None else loss + output.loss * tokens
                    total_tokens = total_tokens + tokens
        if loss is not None:
            loss = loss / total_tokens
        return Seq2SeqMultitaskLMOutput(
            loss=loss, logits=logits, encoder_last_hidden_state=encoder_hidden, task_losses=task_losses or None
        )

    def generate(self, inputs: torch.Tensor | None = None, *args, task=None, compile: bool = False, **kwargs):
        r"""
        [`GenerationMixin.generate`] with `task=`: required for the multi-task sharing modes. sharing="hard" accepts
        one task per example (with `config.task_token_in_decoder`, decoding starts from each example's task token).
        The per-task-parts modes also take one task per example: each task's examples are generated in a call of
        their own (the sequences come back in input order, padded with the pad token). `compile=True`: a static
        cache and compiled decoding steps on any device (greedy and sampling; see `compiled_decoding`).
        """
        if compile:
            kwargs = compiled_decoding(self, kwargs)
        sharing = self.config.sharing
        if sharing == "single":
            if task is not None:
                self._check_task_name(task)
            return self.backbone_generate(inputs, *args, **kwargs)
        if sharing == "hard":
            input_ids = inputs if inputs is not None else kwargs.pop("input_ids", None)
            if input_ids is None:
                raise ValueError("sharing='hard' generates from input_ids (the task token is prepended to them).")
            tasks = self.resolve_tasks(task, input_ids.shape[0])
            if self.config.task_token_in_decoder:
                # One start token per example (generate expands it over beams and samples).
                kwargs["decoder_start_token_id"] = self._task_token_column(tasks, input_ids.device)[:, 0].tolist()
            input_ids, _, kwargs["attention_mask"] = self._prepend_task_tokens(
                tasks, input_ids, None, kwargs.get("attention_mask")
            )
            return super().generate(input_ids, *args, **kwargs)
        # Per-task parts: each task's examples are generated in a call of their own, so beam expansion and the
        # cache never mix tasks; a mixed batch is split by task and put back together in its order.
        if not isinstance(task, str):
            input_ids = inputs if inputs is not None else kwargs.get("input_ids")
            if input_ids is None:
                raise ValueError(f"generate with sharing={sharing!r} and one task per example needs input_ids.")
            tasks = self.resolve_tasks(task, input_ids.shape[0])
            if len(set(tasks)) > 1:
                return generate_mixed_tasks(self, inputs, tasks, *args, **kwargs)
            task = tasks[0]
        self._check_task_name(task)
        with self.task_parts_installed(task):  # for the encoder pass and every decoding step
            return self.backbone_generate(inputs, *args, **kwargs)

    def backbone_generate(self, *args, **kwargs) -> torch.LongTensor:
        """The backbone's own generate, with this model's generation config (and the task's parts when installed):
        the same decoding without this wrapper's forward in every step (5-8% of small-model decoding, bench speed)."""
        with backbone_generation_config(self.backbone, self.generation_config):
            return self.backbone.generate(*args, **kwargs)


__all__ = ["Seq2SeqModel", "Seq2SeqMultitaskLMOutput", "Seq2SeqTaskSlot", "add_task_tokens"]
