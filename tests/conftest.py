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
        "model": {"image_size": 8, "base_width": 8, "max_width": 16, "layers_per_block": 1, "latent_size": 16, "num_classes": 10},
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


@pytest.fixture(autouse=True)
def reset_accelerate_state():
    """accelerate keeps process-wide singletons; each test may ask for other settings (e.g. bf16)."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
