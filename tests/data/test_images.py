import numpy as np
import pytest
import torch
from PIL import Image

from hf_genxfer.data.images import (
    dataset_to_tensors,
    digits_dataset,
    few_shot,
    filter_classes,
    load_image_dataset,
    split_held_out,
    with_image_transform,
)


@pytest.fixture(scope="module")
def digits():
    return digits_dataset()


def test_digits_columns_and_values(digits):
    from sklearn.datasets import load_digits

    assert len(digits) == 1797 and digits.column_names == ["image", "label"]
    pixels, labels = dataset_to_tensors(digits.select(range(5)), 8, 1)
    expected = torch.from_numpy(load_digits().images[:5] / 16 * 2 - 1).float().unsqueeze(1)
    torch.testing.assert_close(pixels, expected, atol=1 / 127.5, rtol=0)
    assert labels.tolist() == load_digits().target[:5].tolist()


def test_filter_split_and_few_shot(digits):
    source = filter_classes(digits, [0, 1, 2, 3, 4])
    assert set(source.unique("label")) == {0, 1, 2, 3, 4}
    splits = split_held_out(source, 0.2, seed=0)
    train, held_out = splits["train"], splits["held_out"]
    assert len(train) + len(held_out) == len(source)
    # Stratified: every class is in the held-out part.
    assert set(held_out.unique("label")) == {0, 1, 2, 3, 4}
    shots = few_shot(train, 10, seed=3)
    assert len(shots) == 50 and np.bincount(shots["label"]).tolist() == [10] * 5
    assert few_shot(train, 10, seed=3)["label"] == shots["label"]
    # Seeded: the same split again, another seed another split.
    assert split_held_out(source, 0.2, seed=0)["held_out"]["label"] == held_out["label"]
    assert split_held_out(source, 0.2, seed=1)["held_out"]["label"] != held_out["label"]


def test_bad_classes_and_fractions(digits):
    with pytest.raises(ValueError, match="data.classes \\[11\\] are not in the dataset"):
        filter_classes(digits, [1, 11])
    with pytest.raises(ValueError, match="held_out_fraction must be between 0 and 1"):
        split_held_out(digits, 1.5, seed=0)


def test_imagefolder_is_resized_and_normalised(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            array = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(array).save(tmp_path / label / f"{i}.png")
    dataset = load_image_dataset(str(tmp_path))
    assert len(dataset) == 6 and set(dataset["label"]) == {0, 1}
    view = with_image_transform(dataset, image_size=8, channels=3)
    row = view[0]
    assert row["pixel_values"].shape == (3, 8, 8)
    assert -1 <= float(row["pixel_values"].min()) and float(row["pixel_values"].max()) <= 1
    grey, labels = dataset_to_tensors(dataset, 16, 1)
    assert grey.shape == (6, 1, 16, 16) and labels.shape == (6,)


def test_missing_columns_are_explained(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "x.png")
    with pytest.raises(ValueError, match="set data.image_column"):
        load_image_dataset(str(tmp_path), image_column="picture")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        load_image_dataset(str(tmp_path / "a" / "x.png"))
