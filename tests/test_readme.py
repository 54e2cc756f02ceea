"""The README's Python blocks run as written, in a fresh process, on tiny runs at the paths they name (the demo's
folders and the transfer recipes' outputs), so that the documented calls cannot rot."""

import os
import re
import subprocess
import sys

import pytest
import yaml
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe

from hf_genxfer.recipes import apply_overrides, validate_recipe
from hf_genxfer.shipped_recipes import shipped_recipe
from hf_genxfer.training.loop import train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO_ROOT, "README.md")
TINY = [
    "training.max_steps=2",
    "training.checkpoint_every=2",
    "training.report_to=none",
    "training.eval_every=0",
    "training.sample_every=0",
]


def _python_blocks() -> list[str]:
    text = open(README, encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def _reset():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder holding tiny runs where the README's snippets look for them (paths relative to it)."""
    root = tmp_path_factory.mktemp("readme")
    previous = os.getcwd()
    os.chdir(root)
    try:
        runs = [
            tiny_gan_recipe("demo_out/gan_digits", max_steps=2),
            tiny_seq2seq_recipe("demo_out/s2s_num2words_en", max_steps=2),
        ]
        gan_source = tiny_gan_recipe("outputs/gan_digits_source", max_steps=2)
        gan_source["data"]["classes"] = [0, 1, 2, 3, 4]
        s2s_source = tiny_seq2seq_recipe("outputs/s2s_num2words_en", max_steps=2)
        s2s_source["data"]["tokenizer_languages"] = ["fr"]
        runs += [gan_source, s2s_source]
        for raw in runs:
            train(validate_recipe(raw))
            _reset()
        # The shipped LoRA recipes themselves, made tiny: they start from the sources above by their relative paths.
        tiny_text = ["data.train_size=16", "data.validation_size=4", "data.test_size=4", "evaluation.max_new_tokens=8"]
        for name, extra in (("gan_digits_transfer_lora", []), ("s2s_num2words_transfer_lora", tiny_text)):
            raw = yaml.safe_load(shipped_recipe(name).read_text())
            train(validate_recipe(apply_overrides(raw, [*TINY, *extra])))
            _reset()
    finally:
        os.chdir(previous)
    return root


def test_the_readme_has_python_blocks():
    blocks = _python_blocks()
    assert len(blocks) >= 2 and any("PeftModel" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_block_runs_as_written(workdir, index):
    code = _python_blocks()[index]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, f"README block {index}:\n{code}\n{result.stderr[-3000:]}"
