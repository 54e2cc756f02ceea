"""Shared fixtures: tiny configs and recipes so that every test runs in seconds on 2 CPU cores."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe  # noqa: E402  (tests/ is on sys.path)


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
