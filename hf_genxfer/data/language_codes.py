"""Language codes of multilingual tokenizers (mBART's `en_XX`, M2M100's `en`, NLLB's `eng_Latn`): which the source
and the target side use, and how the decoder is told the target language when it generates."""

from __future__ import annotations

from ..errors import DataError


def language_token_id(tokenizer, code: str) -> int | None:
    """The id of `code`'s token in `tokenizer` (M2M100 names `__ru__` by `ru`), or None when it has none."""
    if hasattr(tokenizer, "get_lang_id"):
        try:
            return tokenizer.get_lang_id(code)
        except KeyError:
            return None
    token_id = tokenizer.convert_tokens_to_ids(code)
    return None if token_id is None or token_id == tokenizer.unk_token_id else token_id


def _known_codes(tokenizer) -> list[str]:
    for name in ("lang_code_to_id", "lang_token_to_id"):
        codes = getattr(tokenizer, name, None)
        if codes:
            return sorted(str(code).strip("_") for code in codes)
    special = getattr(tokenizer, "extra_special_tokens", None) or getattr(tokenizer, "additional_special_tokens", [])
    if isinstance(special, dict):
        special = list(special.values())
    return sorted(str(token) for token in special if "_" in str(token))


def apply_language_codes(tokenizer, source_code: str | None, target_code: str | None, where: str = "data") -> None:
    """Sets the tokenizer's `src_lang` / `tgt_lang`, so sources and (with `text_target`) labels carry their codes."""
    if source_code is None and target_code is None:
        return
    if not hasattr(tokenizer, "src_lang") or not hasattr(tokenizer, "tgt_lang"):
        raise DataError(
            f"{where}.source_language_code / target_language_code need a tokenizer with language codes (mBART, "
            f"M2M100, NLLB); {type(tokenizer).__name__} has none: drop them."
        )
    for field, code in (("source_language_code", source_code), ("target_language_code", target_code)):
        if code is not None and language_token_id(tokenizer, code) is None:
            known = _known_codes(tokenizer)
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            raise DataError(
                f"{where}.{field}={code!r} is not a language code of this {type(tokenizer).__name__} "
                f"(it knows {len(known)}: {shown}): use one of them."
            )
    if source_code is not None:
        tokenizer.src_lang = source_code
    if target_code is not None:
        tokenizer.tgt_lang = target_code
        if hasattr(tokenizer, "_switch_to_input_mode"):
            tokenizer._switch_to_input_mode()  # setting tgt_lang may leave target mode on (M2M100)


def target_language_start(tokenizer, target_code: str | None) -> dict:
    """
    How generation must start to write `target_code`, read off how the tokenizer encodes a target text: a code at
    the start of the labels (M2M100, NLLB, mBART-50) is forced as the first generated token
    (`forced_bos_token_id`); a code at their end (mBART) is where the decoder starts (`decoder_start_token_id`, as
    mBART's label shift rotates it to the front). {} without a target code.
    """
    if target_code is None:
        return {}
    code_id = language_token_id(tokenizer, target_code)
    labels = tokenizer(text_target="1")["input_ids"]
    if labels and labels[0] == code_id:
        return {"forced_bos_token_id": code_id}
    if code_id in labels[-2:]:
        return {"decoder_start_token_id": code_id}
    raise DataError(
        f"The tokenizer does not put the target language code {target_code!r} at the start or the end of a target "
        "text, so the decoder cannot be told the language: check data.target_language_code."
    )


__all__ = ["apply_language_codes", "language_token_id", "target_language_start"]
