"""Tiny random encoder-decoders of every architecture a user may bring from the Hub, saved as local folders with a
tokenizer of the architecture's own kind (Unigram, BPE, byte-level BPE, WordPiece, SentencePiece), trained here by
the `tokenizers` and `sentencepiece` libraries on a few number words: nothing is downloaded.

`build_backbone_folder(name, folder)` writes `config.json`, `model.safetensors` and the tokenizer files, as
`save_pretrained` of a Hub checkpoint would.
"""

from __future__ import annotations

import json
import os

import torch
from num2words import num2words

# The text the tokenizers are trained on: digits and number words in a Latin and a Cyrillic script.
CORPUS = [str(n) for n in range(0, 1000, 7)] + [
    num2words(n, lang=lang) for lang in ("en", "fr", "ru") for n in range(0, 1000, 7)
]
SMALL = {"hidden": 16, "ffn": 32, "layers": 1, "heads": 2, "positions": 64}

# name -> (tokenizer kind, tokenizer class, the config builder's key)
ARCHITECTURES = {
    "t5": "unigram",
    "mt5": "unigram",
    "bart": "byte_bpe",
    "mbart": "unigram",
    "marian": "sentencepiece",
    "m2m_100": "sentencepiece",
    "nllb": "metaspace_bpe",
    "blenderbot": "byte_bpe",
    "blenderbot-small": "bpe",
    "pegasus": "unigram",
    "led": "byte_bpe",
    "prophetnet": "wordpiece",
    "bert2bert": "wordpiece",
    "bert2gpt2": "wordpiece",
}


# --------------------------------------------------------------------------------------------------------------------
# Tokenizers


def _unigram_vocab(special: list[str], size: int = 120) -> list[tuple[str, float]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=size, special_tokens=special, unk_token="<unk>")
    tokenizer.train_from_iterator(CORPUS, trainer)
    return [tuple(item) for item in json.loads(tokenizer.to_str())["model"]["vocab"]]


def _bpe(byte_level: bool, special: list[str], size: int = 300) -> tuple[dict, list[str]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if byte_level:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=special[-1], end_of_word_suffix="</w>"))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        alphabet = []
    options = {} if byte_level else {"end_of_word_suffix": "</w>"}
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=special, initial_alphabet=alphabet, **options)
    tokenizer.train_from_iterator(CORPUS, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [" ".join(merge) if isinstance(merge, list) else merge for merge in model["merges"]]
    return model["vocab"], merges


def _metaspace_bpe(special: list[str], size: int = 200) -> tuple[dict, list[tuple[str, str]]]:
    """A SentencePiece-style BPE (`▁` marks a word start), as NLLB's tokenizer has."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=size, special_tokens=special))
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in model["merges"]]
    return model["vocab"], merges


def _wordpiece_vocab(size: int = 200) -> dict:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[X_SEP]"]
    tokenizer.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=size, special_tokens=special))
    return json.loads(tokenizer.to_str())["model"]["vocab"]


def _sentencepiece_model(path: str, size: int = 120) -> None:
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_prefix=path,
        vocab_size=size,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=-1,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        minloglevel=2,
    )


def build_tokenizer(name: str, folder: str):
    """The architecture's own tokenizer class, trained on `CORPUS` (written to `folder` for the slow classes)."""
    import transformers

    os.makedirs(folder, exist_ok=True)
    kind = ARCHITECTURES[name]
    if name in ("t5", "mt5"):
        return transformers.T5Tokenizer(vocab=_unigram_vocab(["<pad>", "</s>", "<unk>"]), extra_ids=4)
    if name == "pegasus":
        return transformers.PegasusTokenizer(vocab=_unigram_vocab(["<pad>", "</s>", "<mask_1>", "<mask_2>", "<unk>"]))
    if name == "mbart":
        vocab = _unigram_vocab(["<s>", "<pad>", "</s>", "<unk>"])
        return transformers.MBartTokenizer(vocab=vocab, src_lang="en_XX", tgt_lang="ru_RU")
    if name == "nllb":
        vocab, merges = _metaspace_bpe(["<s>", "<pad>", "</s>", "<unk>"])
        return transformers.NllbTokenizer(vocab=vocab, merges=merges, src_lang="eng_Latn", tgt_lang="rus_Cyrl")
    if kind == "byte_bpe":
        vocab, merges = _bpe(True, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        tokenizer_class = {"bart": transformers.BartTokenizer, "led": transformers.LEDTokenizer}.get(
            name, transformers.BlenderbotTokenizer
        )
        return tokenizer_class(vocab=vocab, merges=[tuple(merge.split(" ")) for merge in merges])
    if name == "blenderbot-small":
        vocab, merges = _bpe(False, ["__null__", "__start__", "__end__", "__unk__"])
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as handle:
            json.dump(vocab, handle)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as handle:
            handle.write("#version: 0.2\n" + "\n".join(merges) + "\n")
        return transformers.BlenderbotSmallTokenizer(
            os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
        )
    if kind == "sentencepiece":
        spm = os.path.join(folder, "spm")
        _sentencepiece_model(spm)
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_file=f"{spm}.model")
        pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        if name == "marian":
            vocab = {"</s>": 0, "<unk>": 1, "<pad>": 2}
            for piece in pieces:
                vocab.setdefault(piece, len(vocab))
            with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as handle:
                json.dump(vocab, handle)
            return transformers.MarianTokenizer(f"{spm}.model", f"{spm}.model", os.path.join(folder, "vocab.json"))
        vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
        for piece in pieces:
            vocab.setdefault(piece, len(vocab))
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as handle:
            json.dump(vocab, handle)
        return transformers.M2M100Tokenizer(
            os.path.join(folder, "vocab.json"), f"{spm}.model", src_lang="en", tgt_lang="ru", language_codes="m2m100"
        )
    if name == "prophetnet":
        vocab = _wordpiece_vocab()
        path = os.path.join(folder, "prophetnet.tokenizer")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(sorted(vocab, key=vocab.get)) + "\n")
        return transformers.ProphetNetTokenizer(path)
    return transformers.BertTokenizer(vocab=_wordpiece_vocab())  # bert2bert, bert2gpt2


# --------------------------------------------------------------------------------------------------------------------
# Configs


def build_config(name: str, tokenizer):
    """A tiny random config of the architecture, sized to `tokenizer` and using its special ids."""
    import transformers

    # Some tokenizers number special tokens past their vocabulary (M2M100's language codes): size the model to all.
    special_ids = tokenizer.convert_tokens_to_ids(tokenizer.all_special_tokens)
    codes = list(getattr(tokenizer, "lang_token_to_id", {}).values())
    s, vocab = SMALL, max(len(tokenizer), *(i + 1 for i in special_ids + codes if i is not None))
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    if name in ("t5", "mt5"):
        config_class = transformers.T5Config if name == "t5" else transformers.MT5Config
        return config_class(
            vocab_size=vocab,
            d_model=s["hidden"],
            d_kv=8,
            d_ff=s["ffn"],
            num_layers=s["layers"],
            num_decoder_layers=s["layers"],
            num_heads=s["heads"],
            pad_token_id=pad,
            eos_token_id=eos,
            decoder_start_token_id=pad,
        )
    bart_like = dict(
        vocab_size=vocab,
        d_model=s["hidden"],
        encoder_layers=s["layers"],
        decoder_layers=s["layers"],
        encoder_attention_heads=s["heads"],
        decoder_attention_heads=s["heads"],
        encoder_ffn_dim=s["ffn"],
        decoder_ffn_dim=s["ffn"],
        max_position_embeddings=s["positions"],
        pad_token_id=pad,
        eos_token_id=eos,
        bos_token_id=bos,
    )
    if name == "bart":
        return transformers.BartConfig(**bart_like, decoder_start_token_id=eos, forced_eos_token_id=eos)
    if name == "mbart":
        return transformers.MBartConfig(**bart_like, decoder_start_token_id=eos)
    if name == "marian":
        return transformers.MarianConfig(**bart_like, decoder_start_token_id=pad, forced_eos_token_id=eos)
    if name in ("m2m_100", "nllb"):  # NLLB is an M2M100 model with its own tokenizer
        # No layer drop: with one layer per stack it can drop every layer a LoRA adapter sits in.
        return transformers.M2M100Config(
            **bart_like, decoder_start_token_id=eos, encoder_layerdrop=0.0, decoder_layerdrop=0.0
        )
    if name == "blenderbot":
        return transformers.BlenderbotConfig(**bart_like, decoder_start_token_id=bos)
    if name == "blenderbot-small":
        return transformers.BlenderbotSmallConfig(**bart_like, decoder_start_token_id=bos)
    if name == "pegasus":
        return transformers.PegasusConfig(**bart_like, decoder_start_token_id=pad)
    if name == "led":
        led = {k: v for k, v in bart_like.items() if k != "max_position_embeddings"}
        return transformers.LEDConfig(
            **led,
            max_encoder_position_embeddings=s["positions"],
            max_decoder_position_embeddings=s["positions"],
            attention_window=[8] * s["layers"],
            decoder_start_token_id=eos,
        )
    if name == "prophetnet":
        return transformers.ProphetNetConfig(
            vocab_size=vocab,
            hidden_size=s["hidden"],
            encoder_ffn_dim=s["ffn"],
            decoder_ffn_dim=s["ffn"],
            num_encoder_layers=s["layers"],
            num_decoder_layers=s["layers"],
            num_encoder_attention_heads=s["heads"],
            num_decoder_attention_heads=s["heads"],
            max_position_embeddings=s["positions"],
            ngram=2,
            num_buckets=8,
            relative_max_distance=16,
            pad_token_id=pad,
            eos_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.sep_token_id,
            decoder_start_token_id=tokenizer.sep_token_id,
        )
    bert = dict(
        vocab_size=vocab,
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        intermediate_size=s["ffn"],
        max_position_embeddings=s["positions"],
        pad_token_id=pad,
    )
    encoder = transformers.BertConfig(**bert)
    if name == "bert2bert":
        decoder = transformers.BertConfig(**bert, is_decoder=True, add_cross_attention=True)
    else:
        decoder = transformers.GPT2Config(
            vocab_size=vocab,
            n_embd=s["hidden"],
            n_layer=s["layers"],
            n_head=s["heads"],
            n_positions=s["positions"],
            add_cross_attention=True,
            is_decoder=True,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            pad_token_id=pad,
        )
    config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = tokenizer.cls_token_id
    config.pad_token_id = pad
    config.eos_token_id = tokenizer.sep_token_id
    config.vocab_size = vocab
    return config


def build_backbone_folder(name: str, folder, seed: int = 0) -> str:
    """A tiny random `name` backbone with its tokenizer, saved to `folder` as a Hub checkpoint would be."""
    from transformers import AutoModelForSeq2SeqLM

    folder = str(folder)
    tokenizer = build_tokenizer(name, os.path.join(folder, "_tokenizer_files"))
    config = build_config(name, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForSeq2SeqLM.from_config(config)
    model.generation_config.max_length = 32
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


__all__ = ["ARCHITECTURES", "CORPUS", "build_backbone_folder", "build_config", "build_tokenizer"]
