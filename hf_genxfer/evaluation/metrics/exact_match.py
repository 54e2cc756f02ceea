"""Exact match: the fraction of predictions equal to their reference, as an `evaluate.Metric`."""

from __future__ import annotations

import datasets
import evaluate

_DESCRIPTION = """\
The fraction of predictions that equal their reference (or one of their references) after `.strip()`, optionally
ignoring case. Returns {"exact_match": value} in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of strings, one per example.
    references: list of strings (one reference each) or list of lists of strings (a match with any one counts).
    ignore_case: compare case-insensitively (default False).
"""


class ExactMatch(evaluate.Metric):
    __doc__ = _DESCRIPTION

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions: list[str], references: list, ignore_case: bool = False) -> dict[str, float]:
        def normalize(text: str) -> str:
            text = text.strip()
            return text.casefold() if ignore_case else text

        matches = [
            normalize(prediction)
            in {normalize(reference) for reference in ([refs] if isinstance(refs, str) else refs)}
            for prediction, refs in zip(predictions, references)
        ]
        return {"exact_match": sum(matches) / len(matches)}
