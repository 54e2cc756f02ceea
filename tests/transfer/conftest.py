"""Tiny GANs and Seq2Seq models (BART and T5 backbones) for the transfer tests, and one thread for tiny tensors."""

import pytest
import torch

from hf_genxfer.models.gan import GANConfig, GANModel
from hf_genxfer.models.seq2seq import Seq2SeqConfig, Seq2SeqModel

TINY_GAN = {"image_size": 8, "base_width": 8, "max_width": 16, "layers_per_block": 1, "latent_size": 8}
TINY_BACKBONES = {
    "bart": {
        "model_type": "bart",
        "vocab_size": 40,
        "d_model": 16,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 32,
        "decoder_ffn_dim": 32,
        "max_position_embeddings": 32,
        "dropout": 0.0,
    },
    "t5": {
        "model_type": "t5",
        "vocab_size": 40,
        "d_model": 16,
        "d_kv": 8,
        "d_ff": 32,
        "num_layers": 2,
        "num_heads": 2,
        "dropout_rate": 0.0,
        "decoder_start_token_id": 0,
    },
}


def make_gan(seed: int = 0, **overrides) -> GANModel:
    torch.manual_seed(seed)
    return GANModel(GANConfig(**{**TINY_GAN, **overrides}))


def make_seq2seq(kind: str = "bart", seed: int = 0, **backbone_overrides) -> Seq2SeqModel:
    torch.manual_seed(seed)
    return Seq2SeqModel(Seq2SeqConfig(backbone={**TINY_BACKBONES[kind], **backbone_overrides})).eval()


def seq2seq_batch(vocab_size: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (2, 6), generator=generator)  # never pad/bos/eos
    labels = torch.randint(3, vocab_size, (2, 4), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


@pytest.fixture
def gan_factory():
    return make_gan


@pytest.fixture
def seq2seq_factory():
    return make_seq2seq


@pytest.fixture
def batch_factory():
    return seq2seq_batch
