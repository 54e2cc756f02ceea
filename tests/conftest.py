"""Shared fixtures: tiny configs and recipes so that every test runs in seconds on 2 CPU cores."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_gan_recipe(output_dir, **training):
    """A raw recipe mapping for a tiny conditional digits GAN."""
    return {
        "family": "gan",
        "output_dir": str(output_dir),
        "seed": 0,
        "model": {
            "image_size": 8,
            "base_width": 8,
            "max_width": 16,
            "layers_per_block": 1,
            "latent_size": 16,
            "num_classes": 10,
        },
        "data": {"dataset": "digits", "held_out_fraction": 0.2},
        "training": {
            "max_steps": 4,
            "batch_size": 8,
            "checkpoint_every": 2,
            "sample_every": 2,
            "log_every": 1,
            "report_to": "none",
            **training,
        },
        "evaluation": {"num_samples": 64},
    }


@pytest.fixture
def gan_recipe_factory(tmp_path):
    def make(name="run", **training):
        return tiny_gan_recipe(tmp_path / name, **training)

    return make


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    """Tiny models on a 2-core machine: thread start-up costs far more than the arithmetic."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_seq2seq_recipe(output_dir, backbone="bart", **training):
    """A raw recipe mapping for a tiny Seq2Seq model on a few num2words pairs."""
    backbones = {
        "bart": {
            "d_model": 16,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "decoder_ffn_dim": 32,
        },
        "t5": {
            "model_type": "t5",
            "d_model": 16,
            "d_kv": 8,
            "d_ff": 32,
            "num_layers": 1,
            "num_decoder_layers": 1,
            "num_heads": 2,
        },
    }
    return {
        "family": "seq2seq",
        "output_dir": str(output_dir),
        "seed": 0,
        "model": {"backbone": backbones[backbone]},
        "data": {
            "dataset": "num2words",
            "language": "en",
            "train_size": 64,
            "validation_size": 8,
            "test_size": 8,
            "low": 0,
            "high": 1000,
        },
        "training": {
            "max_steps": 4,
            "batch_size": 8,
            "learning_rate": 0.003,
            "checkpoint_every": 2,
            "log_every": 1,
            "report_to": "none",
            **training,
        },
        "evaluation": {"max_new_tokens": 12, "num_examples": 3},
    }


@pytest.fixture
def seq2seq_recipe_factory(tmp_path):
    def make(name="s2s", backbone="bart", **training):
        return tiny_seq2seq_recipe(tmp_path / name, backbone=backbone, **training)

    return make


@pytest.fixture(autouse=True)
def reset_accelerate_state():
    """accelerate keeps process-wide singletons; each test may ask for other settings (e.g. bf16)."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
