"""Trains, once and deterministically, the classifier whose features FID and KID use, and writes its weights.

    python scripts/train_feature_classifier.py --dataset digits
    python scripts/train_feature_classifier.py --dataset glyphs
    python scripts/train_feature_classifier.py --dataset fonts

writes `hf_genxfer/evaluation/weights/<dataset>_classifier.safetensors` and, next to it, `<dataset>_classifier.json`
with the held-out accuracy, the seed and how the held-out set was made, so that tests can rebuild it. Digits hold out
a stratified split; glyphs (labelled by character) and fonts (the same images labelled by font) train on every font
with several jittered renders per glyph and hold out renders with fresh jitter seeds. Another dataset is one more
entry in `DATASETS`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from sklearn.model_selection import train_test_split
from torch import nn

from hf_genxfer.evaluation.feature_nets import WEIGHTS_DIR, DigitsClassifier, FontsClassifier, GlyphsClassifier

# Glyphs: every font, this many jittered renders per glyph for training (jitter seed = --seed) and for the held-out
# set (jitter seed = --seed + GLYPHS_HELD_OUT_SEED_OFFSET, never trained on).
GLYPHS_TRAIN_SAMPLES = 12
GLYPHS_HELD_OUT_SAMPLES = 4
GLYPHS_HELD_OUT_SEED_OFFSET = 1000


def load_digits_images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (1797, 1, 8, 8) float32 images in [-1, 1] and int64 labels (the seed is unused)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 2.0 - 1.0).astype(np.float32)[:, None]  # (N, 8, 8) -> (N, 1, 8, 8)
    return images, digits.target.astype(np.int64)


def glyphs_arrays(samples_per_glyph: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`glyphs_dataset` of every font as (N, 1, 32, 32) float32 images in [-1, 1] and int64 labels."""
    from hf_genxfer.data.glyphs import glyphs_dataset

    dataset = glyphs_dataset(samples_per_glyph=samples_per_glyph, seed=seed)
    pixels = np.stack([np.asarray(image, dtype=np.float32) for image in dataset["image"]])
    return (pixels / 127.5 - 1.0)[:, None], np.asarray(dataset["label"], dtype=np.int64)  # -> (N, 1, 32, 32)


def load_glyphs_images(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return glyphs_arrays(GLYPHS_TRAIN_SAMPLES, seed)


def load_glyphs_held_out(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return glyphs_arrays(GLYPHS_HELD_OUT_SAMPLES, seed + GLYPHS_HELD_OUT_SEED_OFFSET)


def glyphs_report(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """Case-insensitive accuracy and the most common confusions: l/I/1, O/o/0, s/S and the like look alike."""
    from hf_genxfer.data.glyphs import GLYPH_CHARACTERS

    characters = np.array(list(GLYPH_CHARACTERS))
    predicted, intended = characters[predictions], characters[labels]
    case_insensitive = np.char.lower(predicted) == np.char.lower(intended)
    pairs, counts = np.unique(
        np.stack([intended, predicted], axis=1)[predicted != intended], axis=0, return_counts=True
    )
    order = np.argsort(-counts, kind="stable")[:15]
    return {
        "held_out_case_insensitive_accuracy": round(float(case_insensitive.mean()), 6),
        "common_confusions": [f"{pairs[i][0]}->{pairs[i][1]}: {counts[i]}" for i in order],
    }


def fonts_arrays(samples_per_glyph: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`glyphs_dataset` of every font as (N, 1, 32, 32) images in [-1, 1], labelled by font (`available_glyph_fonts`)."""
    from hf_genxfer.data.glyphs import available_glyph_fonts, glyphs_dataset

    fonts = available_glyph_fonts()
    dataset = glyphs_dataset(samples_per_glyph=samples_per_glyph, seed=seed)
    pixels = np.stack([np.asarray(image, dtype=np.float32) for image in dataset["image"]])
    labels = np.asarray([fonts.index(font) for font in dataset["font"]], dtype=np.int64)
    return (pixels / 127.5 - 1.0)[:, None], labels


def load_fonts_images(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return fonts_arrays(GLYPHS_TRAIN_SAMPLES, seed)


def load_fonts_held_out(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return fonts_arrays(GLYPHS_HELD_OUT_SAMPLES, seed + GLYPHS_HELD_OUT_SEED_OFFSET)


def fonts_report(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """Per-font held-out accuracy and the most common confusions (a bold font for its regular, and the like)."""
    from hf_genxfer.data.glyphs import available_glyph_fonts

    fonts = np.array(available_glyph_fonts())
    pairs, counts = np.unique(
        np.stack([labels, predictions], axis=1)[predictions != labels], axis=0, return_counts=True
    )
    order = np.argsort(-counts, kind="stable")[:15]
    return {
        "per_font_accuracy": {
            str(fonts[index]): round(float((predictions[labels == index] == index).mean()), 4)
            for index in range(len(fonts))
        },
        "common_confusions": [f"{fonts[pairs[i][0]]}->{fonts[pairs[i][1]]}: {counts[i]}" for i in order],
    }


def fonts_classifier() -> nn.Module:
    from hf_genxfer.data.glyphs import available_glyph_fonts

    return FontsClassifier(available_glyph_fonts())


@dataclass
class FeatureDataset:
    """How to train one feature classifier: its images and labels, and a model with `penultimate(images)` and
    `feature_mean` / `feature_std` buffers (see `GreyImageClassifier`).

    `load(seed)` gives the images and labels; the held-out set is `load_held_out(seed)` or, without it, a stratified
    split of `load`'s. `defaults` override the command line's defaults; `details` go to the JSON report as they are,
    and `report(predictions, labels)` adds entries about the held-out predictions.
    """

    load: Callable[[int], tuple[np.ndarray, np.ndarray]]
    model: Callable[[], nn.Module]
    weights_name: str
    load_held_out: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None
    held_out_description: str = ""
    defaults: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    report: Callable[[np.ndarray, np.ndarray], dict] | None = None


DATASETS = {
    "digits": FeatureDataset(load=load_digits_images, model=DigitsClassifier, weights_name="digits_classifier"),
    "glyphs": FeatureDataset(
        load=load_glyphs_images,
        model=GlyphsClassifier,
        weights_name="glyphs_classifier",
        load_held_out=load_glyphs_held_out,
        held_out_description=(
            "hf_genxfer.data.glyphs.glyphs_dataset(samples_per_glyph=held_out_samples_per_glyph, "
            "seed=seed + held_out_seed_offset) of every font; trained on "
            "glyphs_dataset(samples_per_glyph=train_samples_per_glyph, seed=seed)"
        ),
        defaults={"epochs": 8, "batch_size": 128, "learning_rate": 3e-3, "max_shift": 0},
        details={
            "train_samples_per_glyph": GLYPHS_TRAIN_SAMPLES,
            "held_out_samples_per_glyph": GLYPHS_HELD_OUT_SAMPLES,
            "held_out_seed_offset": GLYPHS_HELD_OUT_SEED_OFFSET,
        },
        report=glyphs_report,
    ),
    "fonts": FeatureDataset(
        load=load_fonts_images,
        model=fonts_classifier,
        weights_name="fonts_classifier",
        load_held_out=load_fonts_held_out,
        held_out_description=(
            "hf_genxfer.data.glyphs.glyphs_dataset(samples_per_glyph=held_out_samples_per_glyph, "
            "seed=seed + held_out_seed_offset) of every font, labelled by font; trained on "
            "glyphs_dataset(samples_per_glyph=train_samples_per_glyph, seed=seed)"
        ),
        defaults={"epochs": 30, "batch_size": 128, "learning_rate": 3e-3, "max_shift": 0},
        details={
            "train_samples_per_glyph": GLYPHS_TRAIN_SAMPLES,
            "held_out_samples_per_glyph": GLYPHS_HELD_OUT_SAMPLES,
            "held_out_seed_offset": GLYPHS_HELD_OUT_SEED_OFFSET,
        },
        report=fonts_report,
    ),
}

# Images per forward pass outside training, to bound memory.
EVAL_BATCH_SIZE = 1024


def held_out_split(labels: np.ndarray, seed: int, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices: a stratified split, rebuilt by the tests from the seed in the JSON file."""
    return train_test_split(np.arange(len(labels)), test_size=test_size, random_state=seed, stratify=labels)


def random_shifts(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shifts each image by up to `max_shift` pixels in each direction; uncovered pixels get the background, -1."""
    if max_shift == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, [max_shift] * 4, value=-1.0)  # (N, C, H, W) -> (N, C, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(images), 2), generator=generator)
    return torch.stack([p[:, y : y + height, x : x + width] for p, (y, x) in zip(padded, offsets.tolist())])


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [model(images[i : i + EVAL_BATCH_SIZE]).argmax(dim=-1) for i in range(0, len(images), EVAL_BATCH_SIZE)]
    )


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict(model, images) == labels).float().mean().item()


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test_size", type=float, default=0.2, help="Held-out fraction, never trained on.")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument(
        "--max_shift", type=int, default=1, help="Augmentation: random shifts of up to this many pixels."
    )
    parser.add_argument("--output_dir", type=Path, default=WEIGHTS_DIR)
    known, _ = parser.parse_known_args(argv)
    recipe = DATASETS[known.dataset]
    parser.set_defaults(**recipe.defaults)
    args = parser.parse_args(argv)

    # One thread and deterministic kernels: the same command writes the same weights.
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(args.seed)

    started = time.perf_counter()

    # 1. data and the fixed split
    images, labels = recipe.load(args.seed)
    if recipe.load_held_out is None:
        train_indices, test_indices = held_out_split(labels, args.seed, args.test_size)
        train_images, train_labels = torch.from_numpy(images[train_indices]), torch.from_numpy(labels[train_indices])
        test_images, test_labels = torch.from_numpy(images[test_indices]), torch.from_numpy(labels[test_indices])
    else:
        train_images, train_labels = torch.from_numpy(images), torch.from_numpy(labels)
        test_images, test_labels = (torch.from_numpy(array) for array in recipe.load_held_out(args.seed))

    # 2. train
    model = recipe.model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    steps_per_epoch = -(-len(train_images) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        total_loss = 0.0
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            inputs = random_shifts(train_images[batch], args.max_shift, generator)
            loss = F.cross_entropy(model(inputs), train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(batch)
        if args.epochs <= 20 or (epoch + 1) % 10 == 0 or epoch + 1 == args.epochs:
            print(f"epoch {epoch + 1:3d}  loss {total_loss / len(order):.4f}  ({time.perf_counter() - started:.0f} s)")

    # 3. standardize the features with training-set statistics, evaluate once on the held-out split, save
    model.eval()
    with torch.no_grad():
        penultimate = torch.cat(
            [
                model.penultimate(train_images[i : i + EVAL_BATCH_SIZE])
                for i in range(0, len(train_images), EVAL_BATCH_SIZE)
            ]
        )
    model.feature_mean.copy_(penultimate.mean(dim=0))
    model.feature_std.copy_(penultimate.std(dim=0))
    train_accuracy = accuracy(model, train_images, train_labels)
    test_predictions = predict(model, test_images)
    test_accuracy = (test_predictions == test_labels).float().mean().item()
    print(f"train accuracy {train_accuracy:.4f}  held-out accuracy {test_accuracy:.4f} ({len(test_images)} images)")
    extra = recipe.report(test_predictions.numpy(), test_labels.numpy()) if recipe.report is not None else {}
    for key, value in extra.items():
        print(f"{key}: {value}")

    args.output_dir.mkdir(parents=True, exist_ok=True)
    weights_path = args.output_dir / f"{recipe.weights_name}.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, weights_path)
    report = {
        "dataset": args.dataset,
        "held_out_accuracy": round(test_accuracy, 6),
        "train_accuracy": round(train_accuracy, 6),
        **extra,
        "seed": args.seed,
    }
    if recipe.load_held_out is None:
        report["split"] = (
            "sklearn.model_selection.train_test_split(arange(N), test_size, random_state=seed, stratify=labels)"
        )
        report["test_size"] = args.test_size
    else:
        report["held_out"] = recipe.held_out_description
    report |= recipe.details
    if isinstance(model, FontsClassifier):
        report["fonts"] = model.fonts  # the order of its logits; the loader builds the classifier from it
    report |= {
        "num_train": len(train_images),
        "num_held_out": len(test_images),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "max_shift": args.max_shift,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__,
        "date": datetime.now(timezone.utc).date().isoformat(),
        "training_seconds": round(time.perf_counter() - started, 1),
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
    }
    (args.output_dir / f"{recipe.weights_name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {weights_path} ({weights_path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
