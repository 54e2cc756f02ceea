"""Shared fixtures: tiny configs and recipes so that every test runs in seconds on 2 CPU cores.

Exact or close: the suite must pass on any CPU, and floating-point results of BLAS/convolution kernels differ with
the CPU, the thread count and the memory alignment of the tensors. So:
- bitwise (`rtol=0, atol=0`, `torch.equal`) only where it is guaranteed: the same computation on tensors of the
  same layout, i.e. within one process on in-memory tensors (a wrapped model against its bare backbone, a copied
  task head against its original), DDP ranks (identical replicas by construction), stored values that were copied
  or saved (state dicts, safetensors bytes), discrete outputs (token ids), and resume exactness (a resumed run
  replays the same kernels on the same layouts: its final weights must equal an uninterrupted run's bit for bit);
- tight tolerances (`tolerances.AFTER_RELOAD`) for arithmetic on tensors that were saved and loaded again, or
  computed in another process: the saved tensors are identical, the rounding of the arithmetic on them may not be.
"""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The fuzz tests (test_fuzz.py) draw new examples locally and the same ones under CI, so that CI cannot fail by chance.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

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
