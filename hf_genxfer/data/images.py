"""Image corpora as `datasets` objects: the built-in digits, any imagefolder or Hub image dataset, and their views.

Every corpus has an `image` column (PIL) and a `label` column (int); `with_image_transform` turns it into the
`pixel_values` (C, H, W) tensors in [-1, 1] that the GAN trains on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_dataset
from PIL import Image as PILImage

from ..errors import DataError

BUILTIN_IMAGE_DATASETS = ("digits", "glyphs")


def digits_dataset() -> Dataset:
    """scikit-learn's 1,797 handwritten digits (8x8, grey) as a Dataset with `image` and `label` columns."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images / 16.0 * 255.0).astype(np.uint8)  # 0..16 -> 0..255
    features = Features({"image": Image(), "label": ClassLabel(names=[str(i) for i in range(10)])})
    return Dataset.from_dict(
        {"image": [PILImage.fromarray(p, mode="L") for p in pixels], "label": digits.target.tolist()},
        features=features,
    )


def load_image_dataset(
    name_or_path: str,
    split: str = "train",
    image_column: str = "image",
    label_column: str | None = "label",
    fonts: list[str] | None = None,
    renderings_per_glyph: int = 1,
) -> Dataset:
    """
    Loads an image corpus by name: `"digits"` or `"glyphs"` (built in; for glyphs, `fonts` picks the fonts and
    `renderings_per_glyph` the jittered renderings of each character), a local `imagefolder` folder (one subfolder
    per class), or a Hub dataset id. The result has an `image` column and, when the corpus has labels, an integer
    `label` column.
    """
    if name_or_path != "glyphs" and (fonts is not None or renderings_per_glyph != 1):
        raise DataError(
            f"data.fonts and data.renderings_per_glyph apply to the built-in glyphs dataset, not {name_or_path!r}: "
            "drop them or set data.dataset to glyphs."
        )
    if name_or_path == "digits":
        return digits_dataset()
    if name_or_path == "glyphs":
        from .glyphs import available_glyph_fonts, glyphs_dataset

        known = available_glyph_fonts()
        unknown = [font for font in fonts or [] if font not in known]
        if unknown or fonts == []:
            what = f"has {unknown[0]!r}, which is not bundled" if unknown else "is empty"
            raise DataError(f"data.fonts {what}: name fonts from {', '.join(known)}.")
        return glyphs_dataset(fonts, samples_per_glyph=renderings_per_glyph)
    if os.path.isdir(name_or_path):
        dataset = _load_imagefolder(name_or_path, split)
    elif os.path.exists(name_or_path):
        raise DataError(
            f"{name_or_path!r} is a file, not a folder: pass an imagefolder directory (one subfolder per class), "
            f"a Hub dataset id, or one of {', '.join(BUILTIN_IMAGE_DATASETS)}."
        )
    else:
        try:
            dataset = load_dataset(name_or_path, split=split)
        except Exception as error:  # datasets raises many kinds for a missing or malformed dataset
            reason = " ".join(str(error).split())[:300]
            raise DataError(
                f"The image dataset {name_or_path!r} cannot be loaded ({type(error).__name__}: {reason}): pass an "
                f"imagefolder directory, a Hub dataset id that exists, or one of {', '.join(BUILTIN_IMAGE_DATASETS)}."
            ) from None
    if image_column not in dataset.column_names:
        raise DataError(
            f"The dataset {name_or_path!r} has no column {image_column!r} (it has {dataset.column_names}): "
            "set data.image_column to the column that holds the images."
        )
    if image_column != "image":
        dataset = dataset.rename_column(image_column, "image")
    if label_column is not None and label_column in dataset.column_names:
        if label_column != "label":
            dataset = dataset.rename_column(label_column, "label")
    elif label_column is not None and label_column != "label":
        raise DataError(
            f"The dataset {name_or_path!r} has no column {label_column!r} (it has {dataset.column_names}): "
            "set data.label_column to the column with the classes, or to null for an unlabelled corpus."
        )
    return dataset


def _load_imagefolder(folder: str, split: str) -> Dataset:
    """datasets' imagefolder loader, with an empty folder or a missing split said in one sentence."""
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    extensions = {extension.lower() for extension in ImageFolder.EXTENSIONS}
    found = any(os.path.splitext(name)[1].lower() in extensions for _, _, names in os.walk(folder) for name in names)
    if not found:
        raise DataError(
            f"{folder!r} holds no images: an imagefolder has image files (.png, .jpg, ...) in one subfolder per "
            f"class, e.g. {os.path.join(folder, 'cat', '0001.png')}."
        )
    try:
        return load_dataset("imagefolder", data_dir=folder, split=split)
    except Exception as error:  # datasets raises ValueError for an unknown split, its own errors for bad files
        reason = " ".join(str(error).split())[:300]
        raise DataError(
            f"The imagefolder {folder!r} cannot be loaded as split {split!r} ({type(error).__name__}: {reason}): "
            "check data.split (a folder without train/test subfolders has only 'train') and the image files."
        ) from None


def filter_classes(dataset: Dataset, classes: Sequence[int] | None) -> Dataset:
    """Keeps the examples whose label is in `classes` (all of them for `None`); labels keep their values."""
    if classes is None:
        return dataset
    present = set(dataset.unique("label"))
    missing = [c for c in classes if c not in present]
    if missing:
        raise DataError(f"data.classes {missing} are not in the dataset, whose labels are {sorted(present)}.")
    keep = set(classes)
    return dataset.filter(lambda labels: [label in keep for label in labels], input_columns="label", batched=True)


def split_held_out(dataset: Dataset, fraction: float, seed: int) -> DatasetDict:
    """A seeded split into `train` and `held_out`, stratified by label when the corpus has labels."""
    if not 0 < fraction < 1:
        raise DataError(f"data.held_out_fraction must be between 0 and 1 (exclusive), got {fraction!r}.")
    stratify = "label" if isinstance(dataset.features.get("label"), ClassLabel) else None
    try:
        parts = dataset.train_test_split(test_size=fraction, seed=seed, stratify_by_column=stratify)
    except ValueError as error:  # too few images to hold some out (of every class, when stratified)
        classes = len(set(dataset["label"])) if stratify else 1
        raise DataError(
            f"data.held_out_fraction={fraction} of {len(dataset)} images cannot hold out at least one image of each "
            f"of the {classes} class(es) and keep one for training ({' '.join(str(error).split())}): add images, "
            "or change data.held_out_fraction."
        ) from None
    return DatasetDict(train=parts["train"], held_out=parts["test"])


def few_shot(dataset: Dataset, shots_per_class: int, seed: int) -> Dataset:
    """A seeded subset with `shots_per_class` examples of every class (all of a class that has fewer)."""
    if shots_per_class < 1:
        raise DataError(f"data.shots_per_class must be at least 1, got {shots_per_class!r}.")
    labels = np.asarray(dataset["label"])
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        chosen.extend(rng.permutation(indices)[:shots_per_class].tolist())
    return dataset.select(sorted(chosen))


def images_to_tensor(
    images: Sequence[PILImage.Image], image_size: int, channels: int, conversions: dict | None = None
) -> torch.Tensor:
    """
    PIL images -> (N, C, S, S) float tensor in [-1, 1], resized (bicubic) and converted to `channels`. With
    `conversions`, counts the original modes and sizes there (`{"modes": {...}, "sizes": {...}}`).
    """
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise DataError(f"Images with {channels} channels are not supported: use 1 (grey), 3 (RGB) or 4 (RGBA).")
    arrays = []
    for image in images:
        if conversions is not None:
            modes, sizes = conversions.setdefault("modes", {}), conversions.setdefault("sizes", {})
            modes[image.mode] = modes.get(image.mode, 0) + 1
            size = f"{image.size[0]}x{image.size[1]}"
            sizes[size] = sizes.get(size, 0) + 1
        image = image.convert(mode)
        if image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), PILImage.BICUBIC)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        arrays.append(array[:, :, None] if array.ndim == 2 else array)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, S, S, C) -> (N, C, S, S)


def with_image_transform(dataset: Dataset, image_size: int, channels: int) -> Dataset:
    """A view of the corpus whose rows are `pixel_values` tensors in [-1, 1] (and `labels` when labelled)."""
    has_labels = "label" in dataset.column_names

    def transform(batch):
        out = {"pixel_values": list(images_to_tensor(batch["image"], image_size, channels))}
        if has_labels:
            out["labels"] = torch.as_tensor(batch["label"], dtype=torch.long)
        return out

    return dataset.with_transform(transform)


def _decoded_images(dataset: Dataset) -> list[PILImage.Image]:
    """The `image` column decoded; a file that is not an image is named in one sentence."""
    try:
        return [image.copy() if hasattr(image, "copy") else image for image in dataset["image"]]
    except (OSError, ValueError, SyntaxError) as error:  # PIL.UnidentifiedImageError is an OSError
        reason = " ".join(str(error).split())[:200]
        name = "one of the images"
        if isinstance(dataset.features.get("image"), Image):
            import io

            for item in dataset.cast_column("image", Image(decode=False))["image"]:
                try:
                    source = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
                    PILImage.open(source).load()
                except (OSError, ValueError, SyntaxError):
                    name = repr(item.get("path") or "an embedded image")
                    break
        raise DataError(
            f"The image {name} cannot be decoded ({reason}): remove it or replace it with a valid image file."
        ) from None


def dataset_to_tensors(
    dataset: Dataset, image_size: int, channels: int, conversions: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The whole corpus as one (N, C, S, S) tensor in [-1, 1] plus its labels (or None): for evaluation."""
    pixels = images_to_tensor(_decoded_images(dataset), image_size, channels, conversions)
    labels = torch.as_tensor(dataset["label"], dtype=torch.long) if "label" in dataset.column_names else None
    return pixels, labels


def describe_conversions(conversions: dict, image_size: int, channels: int) -> str | None:
    """One sentence on images of mixed modes or sizes that were converted, or None when they all matched."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    modes, sizes = conversions.get("modes", {}), conversions.get("sizes", {})
    target_size = f"{image_size}x{image_size}"
    if set(modes) <= {mode} and set(sizes) <= {target_size} and len(sizes) <= 1:
        return None
    total = sum(modes.values())

    def listing(counts: dict) -> str:
        return ", ".join(f"{name}: {count}" for name, count in sorted(counts.items(), key=lambda item: -item[1]))

    return (
        f"the {total} images come in {len(modes)} mode(s) ({listing(modes)}) and {len(sizes)} size(s) "
        f"({listing(sizes)}); each is converted to {mode} and resized to {target_size} (bicubic), as "
        "model.image_channels and model.image_size ask"
    )


def load_image_splits(data, config) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """The recipe's images as tensors in [-1, 1]: `train` (few-shot when asked) and `held_out` (for FID/KID)."""
    dataset = load_image_dataset(
        data.dataset,
        data.split,
        data.image_column,
        data.label_column,
        fonts=getattr(data, "fonts", None),
        renderings_per_glyph=getattr(data, "renderings_per_glyph", 1),
    )
    if data.classes is not None:
        dataset = filter_classes(dataset, data.classes)
    splits = split_held_out(dataset, data.held_out_fraction, data.seed)
    train = splits["train"]
    if data.shots_per_class is not None:
        train = few_shot(train, data.shots_per_class, data.seed)
    conversions: dict = {}
    tensors = {
        "train": dataset_to_tensors(train, config.image_size, config.image_channels, conversions),
        "held_out": dataset_to_tensors(splits["held_out"], config.image_size, config.image_channels, conversions),
    }
    note = describe_conversions(conversions, config.image_size, config.image_channels)
    if note is not None and data.dataset not in BUILTIN_IMAGE_DATASETS:  # the built-in ones are resized by design
        from ..utils import warn

        warn(f"data.dataset {data.dataset!r}: {note}.")
    if config.num_classes is not None:
        labels = tensors["train"][1]
        if labels is None:
            raise DataError("The model is class-conditional (model.num_classes) but the dataset has no labels.")
        if int(labels.max()) >= config.num_classes:
            raise DataError(
                f"The dataset has label {int(labels.max())} but model.num_classes is {config.num_classes}: "
                "raise model.num_classes or filter data.classes."
            )
    return tensors
