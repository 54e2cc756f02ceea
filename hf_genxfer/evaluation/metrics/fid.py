"""Fréchet distance between the feature distributions of generated and real images (FID), as an `evaluate.Metric`.

The features come from a small classifier trained on the images at hand ("digits" by default) rather than from
Inception, so scores are comparable between runs of this project, not with published FIDs.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from hf_genxfer.evaluation import image_set_metric

_CITATION = """\
@inproceedings{heusel2017gans,
  title={GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium},
  author={Heusel, Martin and Ramsauer, Hubert and Unterthiner, Thomas and Nessler, Bernhard and Hochreiter, Sepp},
  booktitle={Advances in Neural Information Processing Systems},
  year={2017}
}
"""

_DESCRIPTION = """\
FID fits a Gaussian to the features of each image set and returns the Fréchet distance between the two:
|mu_g - mu_r|^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2)). Lower is better; 0 means identical feature statistics.
Returns {"fid": float, "num_generated": N, "num_real": M, "feature_network": name}.
"""

# Added to both covariances when their product has no finite square root (singular covariances, few samples).
SQRTM_EPS = 1e-6


def frechet_distance(
    mean_a: np.ndarray, covariance_a: np.ndarray, mean_b: np.ndarray, covariance_b: np.ndarray
) -> float:
    """Fréchet distance between the Gaussians N(mean_a, covariance_a) and N(mean_b, covariance_b)."""
    difference = mean_a - mean_b
    covariance_mean = scipy.linalg.sqrtm(covariance_a @ covariance_b)
    if not np.isfinite(covariance_mean).all():
        offset = np.eye(len(covariance_a)) * SQRTM_EPS
        covariance_mean = scipy.linalg.sqrtm((covariance_a + offset) @ (covariance_b + offset))
    # Rounding gives the square root of a PSD product tiny imaginary parts; a large one means it went wrong.
    if np.iscomplexobj(covariance_mean):
        largest_imaginary = np.abs(np.diagonal(covariance_mean).imag).max()
        if largest_imaginary > 1e-3 * max(1.0, np.abs(np.diagonal(covariance_mean).real).max()):
            raise ValueError(f"The matrix square root in FID has an imaginary component of {largest_imaginary:.3g}.")
        covariance_mean = covariance_mean.real
    distance = (
        difference @ difference + np.trace(covariance_a) + np.trace(covariance_b) - 2 * np.trace(covariance_mean)
    )
    return float(distance)


class FID(image_set_metric.ImageSetMetric):
    __doc__ = _DESCRIPTION

    def _info(self):
        return self._image_set_info(
            description=_DESCRIPTION,
            citation=_CITATION,
            reference_urls=["https://arxiv.org/abs/1706.08500"],
        )

    def _compute(self, predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
        for name, features in (("generated", predictions), ("real", references)):
            if len(features) < 2:
                raise ValueError(f"FID needs at least 2 {name} images to estimate a covariance; got {len(features)}.")
        distance = frechet_distance(
            predictions.mean(axis=0),
            np.atleast_2d(np.cov(predictions, rowvar=False)),  # atleast_2d: np.cov of 1-d features is a scalar
            references.mean(axis=0),
            np.atleast_2d(np.cov(references, rowvar=False)),
        )
        return {"fid": distance}
