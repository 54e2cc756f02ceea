"""Hard sharing's task tokens (`<task:NAME>`, added to the tokenizer and the embeddings), and PEFT's default LoRA
targets for the Seq2Seq model type."""

from __future__ import annotations

# PEFT picks default LoRA targets by `model_type` and has none for "genxfer_seq2seq": give it the attention query
# and value projections of every backbone family we wrap, by their names there (the defaults PEFT uses for T5, BART
# and BERT/GPT-2, plus ProphetNet's): `LoraConfig(task_type="SEQ_2_SEQ_LM")` then works on a Seq2SeqModel as on the
# bare backbone. PEFT matches each name against the last part of a module's path.
SEQ2SEQ_LORA_DEFAULT_TARGETS = ["q", "v", "q_proj", "v_proj", "query", "value", "query_proj", "value_proj", "c_attn"]


def _register_peft_defaults() -> None:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.setdefault(
        "genxfer_seq2seq", list(SEQ2SEQ_LORA_DEFAULT_TARGETS)
    )


_register_peft_defaults()


def add_task_tokens(tokenizer, model, task_names: list[str] | None = None) -> list[int]:
    """
    For sharing="hard": adds a special token `<task:NAME>` per task to `tokenizer`, resizes `model`'s embeddings and
    records the token ids in `model.config.task_token_ids`. Names not yet in `config.task_names` are added as new tasks
    (their token rows start from the embedding's initialisation). Returns the token ids, in `task_names` order.
    """
    config = model.config
    if config.sharing != "hard":
        raise ValueError(f"add_task_tokens is for sharing='hard', got sharing={config.sharing!r}.")
    names = list(config.task_names)
    for name in task_names or []:
        if name not in names:
            names.append(name)
    tokens = [f"<task:{name}>" for name in names]
    tokenizer.add_special_tokens({"extra_special_tokens": tokens}, replace_extra_special_tokens=False)
    token_ids = tokenizer.convert_tokens_to_ids(tokens)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    config.task_names = names
    config.task_token_ids = list(token_ids)
    return config.task_token_ids


__all__ = ["SEQ2SEQ_LORA_DEFAULT_TARGETS", "add_task_tokens"]
