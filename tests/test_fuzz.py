"""Fuzzing the inputs users type and hand over: recipe text, `--set` overrides, recipe values (config validation
included) and data files. Every input loads or fails with the project's own error type (`GenxferError`), never
another exception (issue 11, item 7). Under CI the examples are derandomised (see conftest.py)."""

import dataclasses
import json
import os
import string
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_recipes import tiny_gan_recipe, tiny_seq2seq_recipe

from hf_genxfer.errors import GenxferError
from hf_genxfer.recipes import (
    EvaluationRecipe,
    ImageDataRecipe,
    MultitaskRecipe,
    Recipe,
    TextDataRecipe,
    TrainingRecipe,
    TransferRecipe,
    apply_overrides,
    load_recipe,
    load_yaml,
    validate_recipe,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values of every shape a YAML file can hold, the awkward ones included.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2e-4", "1e3", ".nan", "-.inf", "no", "latest", "scratch", "digits", "num2words", "", "  "]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

SECTIONS = {
    "training": TrainingRecipe,
    "evaluation": EvaluationRecipe,
    "transfer": TransferRecipe,
    "multitask": MultitaskRecipe,
}
MODEL_FIELDS = {
    "gan": ["image_size", "image_channels", "latent_size", "base_width", "max_width", "layers_per_block",
            "num_classes", "class_embedding_size", "adversarial_loss", "minibatch_std", "negative_slope",
            "task_names", "shared_blocks", "task_embedding_size"],
    "seq2seq": ["backbone", "task_names", "sharing", "task_specific", "task_specific_layers", "lora_r",
                "task_token_in_decoder"],
}  # fmt: skip


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _expect_project_error(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except GenxferError:
        return None


@FAST
@given(st.text(max_size=300))
def test_any_recipe_text_loads_or_is_a_recipe_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "recipe.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        _expect_project_error(load_recipe, path)


@FAST
@given(st.binary(max_size=200))
def test_any_recipe_bytes_load_or_are_a_recipe_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "recipe.yaml")
        with open(path, "wb") as handle:
            handle.write(data)
        _expect_project_error(load_recipe, path)


@FAST
@given(st.text(alphabet=string.printable, max_size=200))
def test_yaml_text_parses_or_is_one_sentence(text):
    _expect_project_error(load_yaml, text, "x.yaml")


@FAST
@given(st.sampled_from(["gan", "seq2seq"]), st.data())
def test_random_values_in_every_recipe_field_validate_or_are_recipe_errors(family, data):
    raw = tiny_gan_recipe("/tmp/fuzz_out") if family == "gan" else tiny_seq2seq_recipe("/tmp/fuzz_out")
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.sampled_from(["top", "data", "model", *SECTIONS]))
        if where == "top":
            key = data.draw(st.sampled_from([*_field_names(Recipe), "unknown_key"]))
            raw[key] = data.draw(values)
        else:
            section = raw.setdefault(where, {})
            if not isinstance(section, dict):  # an earlier draw replaced the whole section
                continue
            if where == "data":
                names = _field_names(ImageDataRecipe if family == "gan" else TextDataRecipe)
            elif where == "model":
                names = MODEL_FIELDS[family]
            else:
                names = _field_names(SECTIONS[where])
            section[data.draw(st.sampled_from(names))] = data.draw(values)
    _expect_project_error(validate_recipe, raw)


@FAST
@given(st.lists(st.text(max_size=40), max_size=4))
def test_any_set_overrides_apply_or_are_recipe_errors(assignments):
    raw = tiny_gan_recipe("/tmp/fuzz_out")
    result = _expect_project_error(apply_overrides, raw, assignments)
    if result is not None:
        _expect_project_error(validate_recipe, result)


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["training.", "model.", "data.", "transfer.", "evaluation.", "multitask.", ""]),
            st.sampled_from(["learning_rate", "max_steps", "image_size", "classes", "lora.r", "seed", "batch_size",
                             "held_out_fraction", "num_samples", "mixing", "x", "ema_decay", "r1_every"]),
            st.text(alphabet=string.printable, max_size=12),
        ),
        max_size=3,
    )
)  # fmt: skip
def test_set_overrides_of_real_fields_apply_or_are_recipe_errors(assignments):
    raw = tiny_gan_recipe("/tmp/fuzz_out")
    overrides = [f"{prefix}{field}={value}" for prefix, field, value in assignments]
    result = _expect_project_error(apply_overrides, raw, overrides)
    if result is not None:
        _expect_project_error(validate_recipe, result)


# --------------------------------------------------------------------------------------------------------------------
# Data loaders


@pytest.fixture(scope="module", autouse=True)
def datasets_cache_in_a_temporary_folder():
    """Each fuzzed file is a new dataset for `datasets`: keep their caches out of the user's."""
    import datasets

    previous = datasets.config.HF_DATASETS_CACHE
    with tempfile.TemporaryDirectory() as folder:
        datasets.config.HF_DATASETS_CACHE = folder
        yield
    datasets.config.HF_DATASETS_CACHE = previous


text_rows = st.lists(
    st.dictionaries(st.sampled_from(["source", "target", "text", "x"]), values, max_size=3), max_size=5
)


@SLOW
@given(st.sampled_from([".json", ".jsonl", ".csv"]), st.one_of(st.binary(max_size=300), text_rows))
def test_any_text_file_loads_or_is_a_data_error(extension, content):
    from hf_genxfer.data.text import load_text_pairs

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"pairs{extension}")
        if isinstance(content, bytes):
            data = content
        elif extension == ".csv":
            columns = sorted({key for row in content for key in row})
            lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in content]
            data = "\n".join(lines).encode()
        else:
            data = "\n".join(json.dumps(row, default=str) for row in content).encode()
        with open(path, "wb") as handle:
            handle.write(data)
        _expect_project_error(load_text_pairs, path, split=None)


@SLOW
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "a/deeper"]),
            st.sampled_from([".png", ".jpg", ".txt"]),
            st.one_of(st.binary(max_size=64), st.sampled_from(["png", "rgba", "tiny"])),
        ),
        max_size=5,
    )
)
def test_any_image_folder_loads_or_is_a_data_error(files):  # fmt: skip
    from PIL import Image

    from hf_genxfer.data.images import dataset_to_tensors, load_image_dataset

    with tempfile.TemporaryDirectory() as folder:
        for index, (subfolder, extension, content) in enumerate(files):
            os.makedirs(os.path.join(folder, subfolder), exist_ok=True)
            path = os.path.join(folder, subfolder, f"{index}{extension}")
            if isinstance(content, bytes):
                with open(path, "wb") as handle:
                    handle.write(content)
            else:
                mode, size = {"png": ("L", 8), "rgba": ("RGBA", 5), "tiny": ("RGB", 1)}[content]
                Image.new(mode, (size, size)).save(path, format="PNG")
        dataset = _expect_project_error(load_image_dataset, folder)
        if dataset is not None:
            _expect_project_error(dataset_to_tensors, dataset, 8, 1)


def test_the_fuzzed_recipes_include_valid_ones():
    # The strategies above must reach the success path too, or the tests would only ever see errors.
    raw = tiny_gan_recipe("/tmp/fuzz_out")
    assert validate_recipe(apply_overrides(raw, ["training.learning_rate=2e-4"])).training.learning_rate == 2e-4
    assert load_yaml(yaml.safe_dump(raw), "x") == raw
