"""Trains, once and deterministically, the classifier whose features FID and KID use, and writes its weights.

    python scripts/train_feature_classifier.py --dataset digits

writes `hf_genxfer/evaluation/weights/digits_classifier.safetensors` and, next to it, `digits_classifier.json` with
the held-out accuracy, the seed and the split, so that tests can rebuild the held-out set. Another dataset is one
more entry in `DATASETS`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from sklearn.model_selection import train_test_split
from torch import nn

from hf_genxfer.evaluation.feature_nets import WEIGHTS_DIR, DigitsClassifier


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (1797, 1, 8, 8) float32 images in [-1, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 2.0 - 1.0).astype(np.float32)[:, None]  # (N, 8, 8) -> (N, 1, 8, 8)
    return images, digits.target.astype(np.int64)


@dataclass
class FeatureDataset:
    """How to train one feature classifier: its images and labels, and a model with `penultimate(images)` and
    `feature_mean` / `feature_std` buffers (see `DigitsClassifier`)."""

    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    model: Callable[[], nn.Module]
    weights_name: str


DATASETS = {
    "digits": FeatureDataset(load=load_digits_images, model=DigitsClassifier, weights_name="digits_classifier")
}


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
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    return (model(images).argmax(dim=-1) == labels).float().mean().item()


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
    args = parser.parse_args(argv)
    recipe = DATASETS[args.dataset]

    # One thread and deterministic kernels: the same command writes the same weights.
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(args.seed)

    # 1. data and the fixed split
    images, labels = recipe.load()
    train_indices, test_indices = held_out_split(labels, args.seed, args.test_size)
    train_images, train_labels = torch.from_numpy(images[train_indices]), torch.from_numpy(labels[train_indices])
    test_images, test_labels = torch.from_numpy(images[test_indices]), torch.from_numpy(labels[test_indices])

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
        if (epoch + 1) % 10 == 0 or epoch + 1 == args.epochs:
            print(f"epoch {epoch + 1:3d}  loss {total_loss / len(order):.4f}")

    # 3. standardize the features with training-set statistics, evaluate once on the held-out split, save
    model.eval()
    with torch.no_grad():
        penultimate = model.penultimate(train_images)
    model.feature_mean.copy_(penultimate.mean(dim=0))
    model.feature_std.copy_(penultimate.std(dim=0))
    train_accuracy = accuracy(model, train_images, train_labels)
    test_accuracy = accuracy(model, test_images, test_labels)
    print(f"train accuracy {train_accuracy:.4f}  held-out accuracy {test_accuracy:.4f} ({len(test_indices)} images)")

    args.output_dir.mkdir(parents=True, exist_ok=True)
    weights_path = args.output_dir / f"{recipe.weights_name}.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, weights_path)
    report = {
        "dataset": args.dataset,
        "held_out_accuracy": round(test_accuracy, 6),
        "train_accuracy": round(train_accuracy, 6),
        "seed": args.seed,
        "split": "sklearn.model_selection.train_test_split(arange(N), test_size, random_state=seed, stratify=labels)",
        "test_size": args.test_size,
        "num_train": len(train_indices),
        "num_held_out": len(test_indices),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "max_shift": args.max_shift,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__,
        "date": datetime.now(timezone.utc).date().isoformat(),
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
    }
    (args.output_dir / f"{recipe.weights_name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {weights_path} ({weights_path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
