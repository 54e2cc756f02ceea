"""Configuration of the Seq2Seq family: a transformers encoder-decoder backbone plus our task and sharing fields."""

from __future__ import annotations

from dataclasses import field

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

SHARING_MODES = ("single",)

# The small backbone used when none is given: a BART sized for the built-in num2words corpora on a CPU.
DEFAULT_BACKBONE = {
    "model_type": "bart",
    "vocab_size": 128,
    "d_model": 128,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 256,
    "decoder_ffn_dim": 256,
    "max_position_embeddings": 256,
    "dropout": 0.1,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "decoder_start_token_id": 1,
    "forced_eos_token_id": None,
}


def default_backbone_config(tokenizer=None, **overrides) -> PreTrainedConfig:
    """The small default BART backbone; with `tokenizer`, its vocabulary size and special token ids are used.

    The decoder starts from `<s>` (the tokenizer's bos token) and stops at `</s>`, which the tokenizer appends.
    """
    values = dict(DEFAULT_BACKBONE)
    if tokenizer is not None:
        values.update(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.bos_token_id,
        )
    values.update(overrides)
    return AutoConfig.for_model(values.pop("model_type"), **values)


@strict
class Seq2SeqConfig(PreTrainedConfig):
    r"""
    Configuration of a [`Seq2SeqModel`]: which transformers encoder-decoder to build, and which tasks it serves.

    Args:
        backbone (`PreTrainedConfig` or `dict`, *optional*):
            Config of any encoder-decoder that `AutoModelForSeq2SeqLM` builds (BART, T5, Marian, ...), as a config
            object or a dict holding its `model_type`. Defaults to a small BART (d_model 128, 2+2 layers, 4 heads);
            use [`default_backbone_config`] to size its vocabulary from a tokenizer.
        task_names (`list[str]`, *optional*, defaults to `["default"]`):
            Names of the tasks the model serves, e.g. one per language; unique, non-empty strings.
        sharing (`str`, *optional*, defaults to `"single"`):
            How tasks share parameters. `"single"`: one backbone serves every task.

    Example:

    ```python
    >>> from hf_genxfer.models.seq2seq import Seq2SeqConfig, Seq2SeqModel
    >>> backbone = {"model_type": "t5", "vocab_size": 99, "d_model": 16, "num_layers": 2, "decoder_start_token_id": 0}
    >>> model = Seq2SeqModel(Seq2SeqConfig(backbone=backbone, task_names=["en", "fr"]))
    ```
    """

    model_type = "genxfer_seq2seq"
    sub_configs_defaults = {
        "backbone": SubConfigSpec(
            config_class=AutoConfig,
            model_type=DEFAULT_BACKBONE["model_type"],
            init_kwargs={key: value for key, value in DEFAULT_BACKBONE.items() if key != "model_type"},
        )
    }

    backbone: PreTrainedConfig | dict | None = None
    task_names: list[str] = field(default_factory=lambda: ["default"])
    sharing: str = "single"
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        if isinstance(self.backbone, dict):
            # `SubConfigSpec` would fall back to BART for a dict without `model_type`; say so instead.
            if "model_type" not in self.backbone:
                raise ValueError("`backbone` must be a config object or a dict with a `model_type` key.")
            backbone = dict(self.backbone)
            model_type = backbone.pop("model_type")
            if model_type not in CONFIG_MAPPING:
                raise ValueError(
                    f"`backbone` model_type {model_type!r} is not a transformers config type "
                    "(use an encoder-decoder such as bart, t5, marian)."
                )
            self.backbone = AutoConfig.for_model(model_type, **backbone)
        elif self.backbone is None:
            self.backbone = default_backbone_config()
        # The base class sets `attn_implementation` (default None) on every sub-config: keep the one a built
        # backbone already runs with, so wrapping a model does not change its attention kernel.
        backbone_attention = getattr(self.backbone, "_attn_implementation_internal", None)
        super().__post_init__(**kwargs)
        if kwargs.get("attn_implementation") is None and backbone_attention is not None:
            self.backbone._attn_implementation_internal = backbone_attention
        if not getattr(self.backbone, "is_encoder_decoder", False):
            raise ValueError(
                f"`backbone` must be an encoder-decoder config (BART, T5, Marian, ...), "
                f"got model_type {self.backbone.model_type!r}."
            )
        if getattr(self.backbone, "decoder_start_token_id", None) is None:
            # T5 configs no longer default it, and training with labels would fail deep inside the backbone.
            raise ValueError(
                "`backbone` must set `decoder_start_token_id` (the first decoder token: T5 uses its pad id 0, "
                "BART its eos id 2)."
            )
        if not self.task_names or any(not isinstance(name, str) or not name for name in self.task_names):
            raise ValueError(f"`task_names` must be a non-empty list of non-empty strings, got {self.task_names!r}.")
        if len(set(self.task_names)) != len(self.task_names):
            raise ValueError(f"`task_names` must be unique, got {self.task_names!r}.")
        if self.sharing not in SHARING_MODES:
            raise ValueError(f"`sharing` must be one of {', '.join(SHARING_MODES)}, got {self.sharing!r}.")

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        # Generation and caches read layer counts and vocab size from the text config: those live in the backbone.
        return self.backbone.get_text_config(decoder=decoder, encoder=encoder)


__all__ = ["Seq2SeqConfig", "default_backbone_config", "SHARING_MODES"]
