"""The `evaluate.Metric` base of FID and KID: it compares a set of generated images with a set of real ones.

evaluate stores inputs as Arrow rows, which needs as many references as predictions and is slow for images (nested
float lists). These metrics keep the added images as tensors instead, and run them through the feature network in
batches when `compute` is called.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import torch

from hf_genxfer.evaluation.feature_nets import load_feature_network
from hf_genxfer.evaluation.image_features import (
    FeatureNetwork,
    as_feature_matrix,
    as_image_tensor,
    extract_features,
    feature_network_name,
)

IMAGE_SET_FEATURES = datasets.Features(
    {
        "predictions": datasets.Array3D(shape=(None, None, None), dtype="float32"),
        "references": datasets.Array3D(shape=(None, None, None), dtype="float32"),
    }
)

IMAGE_SET_INPUTS = """
Args:
    predictions: generated images, (N, C, H, W) float tensor or numpy array with values in [-1, 1].
    references: real images, (M, C, H, W) in [-1, 1]; M need not equal N.
    feature_network: "digits" (default) or another name registered with `register_feature_network`, an nn.Module
        with a `features(images) -> (N, D)` method, or a function images -> (N, D). Modules run in eval mode under
        torch.no_grad and get the images on the device of their parameters.
    batch_size: images per forward pass of the feature network (default 256).
    predictions_features, references_features: (N, D) features computed beforehand (e.g. with `extract_features`),
        in place of `predictions` / `references`, so the real set is embedded once for many evaluations.
"""


class ImageSetMetric(evaluate.Metric):
    """
    Base for metrics that compare a set of generated images with a set of real ones in a feature network's space.
    Subclasses implement `_compute(predictions, references, **kwargs)` on the (N, D) and (M, D) float64 features.

    Images added with `add` / `add_batch` are kept in memory on one process: under `accelerate`, gather them first
    (`accelerator.gather_for_metrics`) and compute on the main process.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.num_process != 1:
            raise ValueError(
                f"{type(self).__name__} keeps images in memory on one process (num_process=1); gather the images of "
                "all processes first (accelerator.gather_for_metrics) and compute on the main process."
            )
        self._generated: list[torch.Tensor] = []
        self._real: list[torch.Tensor] = []

    def _image_set_info(self, description: str, citation: str, reference_urls: list[str]) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=description,
            citation=citation,
            inputs_description=IMAGE_SET_INPUTS,
            features=IMAGE_SET_FEATURES,
            reference_urls=reference_urls,
        )

    def __len__(self):
        return sum(len(images) for images in self._generated)

    def add_batch(self, *, predictions=None, references=None):
        """
        Adds generated (`predictions`) and/or real (`references`) images; the two batches may differ in size. They are
        copied, so the caller may reuse its buffers before `compute`.
        """
        if predictions is not None:
            self._generated.append(as_image_tensor(predictions, "predictions").clone())
        if references is not None:
            self._real.append(as_image_tensor(references, "references").clone())

    def add(self, *, prediction=None, reference=None):
        """Adds one generated (`prediction`) and/or one real (`reference`) (C, H, W) image."""
        self.add_batch(
            predictions=None if prediction is None else [prediction],
            references=None if reference is None else [reference],
        )

    def compute(
        self,
        *,
        predictions=None,
        references=None,
        feature_network: FeatureNetwork = "digits",
        batch_size: int = 256,
        predictions_features=None,
        references_features=None,
        **kwargs,
    ) -> dict[str, Any]:
        """Compares the generated and the real images added so far and with this call, then forgets them."""
        self.add_batch(predictions=predictions, references=references)
        generated, real, self._generated, self._real = self._generated, self._real, [], []
        network_name, used_network = feature_network_name(feature_network), False
        sides = {}
        for side, images, features in (
            ("predictions", generated, predictions_features),
            ("references", real, references_features),
        ):
            if features is not None and images:
                raise ValueError(f"Pass either {side} images or {side}_features, not both.")
            if features is not None:
                sides[side] = as_feature_matrix(features, f"{side}_features")
                continue
            if not images:
                raise ValueError(f"{type(self).__name__} needs {side} images (or {side}_features); none were given.")
            if isinstance(feature_network, str):
                feature_network = load_feature_network(feature_network)  # once for both sets
            sides[side] = extract_features(torch.cat(images), feature_network, batch_size)
            used_network = True
        generated_features, real_features = sides["predictions"], sides["references"]
        if generated_features.shape[1] != real_features.shape[1]:
            raise ValueError(
                f"Generated and real features differ in size ({generated_features.shape[1]} vs "
                f"{real_features.shape[1]}); compute both with the same feature network."
            )
        result = self._compute(predictions=generated_features, references=real_features, **kwargs)
        return {
            **result,
            "num_generated": len(generated_features),
            "num_real": len(real_features),
            "feature_network": network_name if used_network else "precomputed",
        }
