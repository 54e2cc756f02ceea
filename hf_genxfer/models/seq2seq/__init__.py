"""Seq2Seq family: a transformers encoder-decoder wrapped as one Hugging Face model, registered with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .configuration_seq2seq import SHARING_MODES, TASK_SPECIFIC_PARTS, Seq2SeqConfig, default_backbone_config
from .modeling_seq2seq import Seq2SeqModel, Seq2SeqMultitaskLMOutput, add_task_tokens

AutoConfig.register(Seq2SeqConfig.model_type, Seq2SeqConfig, exist_ok=True)
AutoModel.register(Seq2SeqConfig, Seq2SeqModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(Seq2SeqConfig, Seq2SeqModel, exist_ok=True)

__all__ = [
    "SHARING_MODES",
    "TASK_SPECIFIC_PARTS",
    "Seq2SeqConfig",
    "Seq2SeqModel",
    "Seq2SeqMultitaskLMOutput",
    "add_task_tokens",
    "default_backbone_config",
]
