"""The Seq2Seq model: any transformers encoder-decoder (BART, T5, Marian, ...) behind one Hugging Face model class.

The wrapper owns the backbone as `self.backbone`, so later sharing modes can add per-task parts next to it while
`generate`, `save_pretrained` and the Auto classes keep working as for the bare backbone.
"""

from __future__ import annotations

import copy
import os

import torch
from torch import nn
from transformers import AutoModelForSeq2SeqLM, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_seq2seq import Seq2SeqConfig


class Seq2SeqModel(PreTrainedModel, GenerationMixin):
    r"""
    A transformers encoder-decoder wrapped as `self.backbone`; its forward pass returns the backbone's output.

    Example:

    ```python
    >>> from hf_genxfer.models.seq2seq import Seq2SeqModel
    >>> model = Seq2SeqModel.from_backbone("path/to/bart-or-t5")  # keeps the pretrained weights
    >>> outputs = model.generate(input_ids, num_beams=2, max_new_tokens=20)
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
            kwargs: `Seq2SeqConfig` fields (`task_names`, `sharing`); the rest go to `from_pretrained`.
        """
        config_fields = {name: kwargs.pop(name) for name in ("task_names", "sharing") if name in kwargs}
        if not isinstance(backbone, PreTrainedModel):
            backbone = AutoModelForSeq2SeqLM.from_pretrained(backbone, **kwargs)
        elif kwargs:
            raise TypeError(f"Unexpected arguments for an already built backbone: {', '.join(kwargs)}.")
        config = Seq2SeqConfig(backbone=backbone.config, **config_fields)
        return cls(config, backbone=backbone)

    def _init_weights(self, module: nn.Module):
        # Every parameter lives in the backbone, which initialises (or loads) its own weights.
        pass

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
        return self.backbone.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, **kw)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        # Used by `DataCollatorForSeq2Seq(model=...)`: shift labels right behind the decoder start token.
        return self.backbone.prepare_decoder_input_ids_from_labels(labels)

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
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""
        Same arguments as the backbone's forward; `labels` of shape (B, T) with -100 on padding give the loss.
        `past_key_values` is accepted as the older name of `cache`.
        """
        kwargs.pop("return_dict", None)  # always a Seq2SeqLMOutput: `generate` and the training loop read fields
        return self.backbone(
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
            return_dict=True,
            **kwargs,
        )


__all__ = ["Seq2SeqModel"]
