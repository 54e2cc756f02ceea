"""Configuration of the Seq2Seq family: a transformers encoder-decoder backbone plus our task and sharing fields."""

from dataclasses import field

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

SHARING_MODES = ("single", "hard", "shared_encoder", "shared_structure")
# What each task owns in `sharing="shared_structure"`; everything else is shared.
TASK_SPECIFIC_PARTS = ("lm_head", "top_decoder_layers", "lora")

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


def tokenizer_backbone_fields(tokenizer) -> dict:
    """Backbone config fields that follow a tokenizer: vocabulary size and special ids (the decoder starts at bos)."""
    return {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.bos_token_id,
    }


def default_backbone_config(tokenizer=None, **overrides) -> PreTrainedConfig:
    """The small default BART backbone; with `tokenizer`, its vocabulary size and special token ids are used.

    The decoder starts from `<s>` (the tokenizer's bos token) and stops at `</s>`, which the tokenizer appends.
    """
    values = dict(DEFAULT_BACKBONE)
    if tokenizer is not None:
        values.update(tokenizer_backbone_fields(tokenizer))
    values.update(overrides)
    return AutoConfig.for_model(values.pop("model_type"), **values)


def _nested_configs(config: PreTrainedConfig) -> list[PreTrainedConfig]:
    """`config` and every sub-config below it (an EncoderDecoderConfig's encoder and decoder, ...)."""
    found = [config]
    for name in getattr(config, "sub_configs", {}) or {}:
        child = getattr(config, name, None)
        if isinstance(child, PreTrainedConfig):
            found.extend(_nested_configs(child))
    return found


def decoder_layer_count(backbone: PreTrainedConfig) -> int:
    """Decoder layers of an encoder-decoder config (BART/Marian: `decoder_layers`, T5: `num_decoder_layers`)."""
    for name in ("decoder_layers", "num_decoder_layers"):
        if isinstance(getattr(backbone, name, None), int):
            return getattr(backbone, name)
    return backbone.get_text_config(decoder=True).num_hidden_layers


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
            How tasks share parameters. `"single"`: one backbone serves every task, `task=` is not needed.
            The multi-task modes need two or more `task_names` and `task=` in `forward` and `generate`:
            `"hard"`: one backbone; each example's encoder input starts with its task's token (`task_token_ids`),
            so a batch may mix tasks. `"shared_encoder"`: a shared encoder and token embedding, one decoder per task
            (its layers, positions and norms). `"shared_structure"`: shared encoder and decoder, with the parts named
            by `task_specific` per task.
        task_token_ids (`list[int]`, *optional*):
            For `sharing="hard"`: the token id prepended to the encoder input of each task, in `task_names` order.
            Set by [`add_task_tokens`], which adds `<task:NAME>` tokens to the tokenizer.
        task_token_in_decoder (`bool`, *optional*, defaults to `True`):
            For `sharing="hard"`: the decoder also starts from the task's token (in place of
            `decoder_start_token_id`, as mBART and NLLB start from a language code), so every decoding step sees the
            task through self-attention and not only through cross-attention to the encoder's first position.
            `generate` outputs then begin with the task token (`skip_special_tokens=True` drops it).
        task_specific (`str`, *optional*, defaults to `"top_decoder_layers"`):
            For `sharing="shared_structure"`: what each task owns, `"top_decoder_layers"` (the top
            `task_specific_layers` decoder layers) or `"lm_head"` (an output projection per task, untied from the
            shared token embedding) or `"lora"` (a LoRA adapter per task on the backbone's linear layers: the
            base weights are shared, each task trains only its low-rank update).
        task_specific_layers (`int`, *optional*, defaults to 1):
            For `task_specific="top_decoder_layers"`: how many of the top decoder layers each task owns, from 1 to the
            number of decoder layers.
        lora_rank (`int`, *optional*, defaults to 8):
            For `task_specific="lora"`: the rank of each task's adapters.
        lora_alpha (`float`, *optional*, defaults to 16.0):
            For `task_specific="lora"`: the adapters' update is scaled by `lora_alpha / lora_rank`.
        lora_target_modules (`list[str]`, *optional*):
            For `task_specific="lora"`: the names (last path component, e.g. `["q_proj", "v_proj"]` for BART,
            `["q", "v"]` for T5) of the linear layers that get adapters; by default every linear layer but the LM head.

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
    task_token_ids: list[int] | None = None
    task_token_in_decoder: bool = True
    task_specific: str = "top_decoder_layers"
    task_specific_layers: int = 1
    lora_rank: int = 8
    lora_alpha: float | int = 16.0
    lora_target_modules: list[str] | None = None
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
        # The base class sets `attn_implementation` (default None) on every sub-config, down to a composite
        # backbone's own encoder and decoder configs (EncoderDecoderModel): keep the kernels a built backbone
        # already runs with, so that wrapping a model does not change its outputs.
        attention = [
            (config, config._attn_implementation_internal)
            for config in _nested_configs(self.backbone)
            if getattr(config, "_attn_implementation_internal", None) is not None
        ]
        super().__post_init__(**kwargs)
        if kwargs.get("attn_implementation") is None:
            for config, implementation in attention:
                config._attn_implementation_internal = implementation
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
        if self.sharing != "single" and len(self.task_names) < 2:
            raise ValueError(
                f"`sharing={self.sharing!r}` needs two or more `task_names`, got {self.task_names!r} "
                "(use sharing='single' for one task)."
            )
        if self.task_token_ids is not None:
            if self.sharing != "hard":
                raise ValueError(f"`task_token_ids` is only used with sharing='hard', got sharing={self.sharing!r}.")
            vocab_size = self.backbone.vocab_size
            if len(self.task_token_ids) != len(self.task_names) or any(
                not isinstance(token, int) or not 0 <= token < vocab_size for token in self.task_token_ids
            ):
                raise ValueError(
                    f"`task_token_ids` must hold one token id in [0, {vocab_size}) per task in `task_names`, "
                    f"got {self.task_token_ids!r}."
                )
        if self.task_specific not in TASK_SPECIFIC_PARTS:
            raise ValueError(
                f"`task_specific` must be one of {', '.join(TASK_SPECIFIC_PARTS)}, got {self.task_specific!r}."
            )
        if self.lora_rank < 1 or self.lora_alpha <= 0:
            raise ValueError(
                f"`lora_rank` must be at least 1 and `lora_alpha` positive, "
                f"got {self.lora_rank} and {self.lora_alpha}."
            )
        if self.lora_target_modules is not None and not self.lora_target_modules:
            raise ValueError(
                "`lora_target_modules` must name at least one module (or be None for every linear layer)."
            )
        decoder_layers = decoder_layer_count(self.backbone)
        if not 1 <= self.task_specific_layers <= decoder_layers:
            raise ValueError(
                f"`task_specific_layers` must lie in [1, {decoder_layers}] (the backbone's decoder layers), "
                f"got {self.task_specific_layers}."
            )

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        # Generation and caches read layer counts and vocab size from the text config: those live in the backbone.
        return self.backbone.get_text_config(decoder=decoder, encoder=encoder)


__all__ = ["Seq2SeqConfig", "default_backbone_config", "SHARING_MODES", "TASK_SPECIFIC_PARTS"]
