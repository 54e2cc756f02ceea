"""Offline evaluation for generated images and text: FID and KID in the feature space of a small shipped classifier,
and BLEU, chrF and exact match through sacrebleu, each an `evaluate.Metric`.

Example:

```py
>>> from hf_genxfer.evaluation import load_metric
>>> fid = load_metric("fid")
>>> fid.compute(predictions=generated_images, references=real_images)  # (N, C, H, W) in [-1, 1]
{'fid': 1.93, 'num_generated': 1000, 'num_real': 1797, 'feature_network': 'digits'}
```
"""

from __future__ import annotations

import importlib
from pathlib import Path

from hf_genxfer.evaluation.accuracy import classifier_accuracy, style_accuracy
from hf_genxfer.evaluation.feature_nets import (
    DigitsClassifier,
    FontsClassifier,
    GlyphsClassifier,
    available_feature_networks,
    load_feature_network,
    register_feature_network,
)
from hf_genxfer.evaluation.image_features import extract_features

METRICS_DIR = Path(__file__).parent / "metrics"

# name -> class in hf_genxfer/evaluation/metrics/<name>.py
METRIC_CLASSES = {"fid": "FID", "kid": "KID", "bleu": "Bleu", "chrf": "Chrf", "exact_match": "ExactMatch"}


def load_metric(name: str, **kwargs):
    """
    Builds the metric `name` ("fid", "kid", "bleu", "chrf" or "exact_match") from the package, without network
    access; `kwargs` go to `evaluate.Metric` (e.g. `seed`, `keep_in_memory`, `experiment_id`).
    """
    if name not in METRIC_CLASSES:
        raise ValueError(f"Unknown metric {name!r}; valid names are: {', '.join(METRIC_CLASSES)}.")
    module = importlib.import_module(f"hf_genxfer.evaluation.metrics.{name}")
    return getattr(module, METRIC_CLASSES[name])(**kwargs)


__all__ = [
    "classifier_accuracy",
    "style_accuracy",
    "METRICS_DIR",
    "DigitsClassifier",
    "FontsClassifier",
    "GlyphsClassifier",
    "available_feature_networks",
    "extract_features",
    "load_feature_network",
    "load_metric",
    "register_feature_network",
]
