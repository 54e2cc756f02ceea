"""Corpus chrF (and chrF++) computed by sacrebleu, as an `evaluate.Metric` that needs no download."""

from __future__ import annotations

import datasets
import evaluate
import sacrebleu

_CITATION = """\
@inproceedings{popovic-2015-chrf,
  title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
  author = "Popovi{\\'c}, Maja",
  booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
  year = "2015",
  url = "https://aclanthology.org/W15-3049",
  pages = "392--395",
}
"""

_DESCRIPTION = """\
Corpus-level chrF of `sacrebleu.corpus_chrf`: an F-score over character n-grams (and word n-grams for chrF++,
word_order=2), on a 0-100 scale. Returns {"chrf": score}, identical to sacrebleu's own number.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of strings, one hypothesis per example.
    references: list of strings (one reference each) or list of lists of strings (one or more references each).
    char_order: character n-gram order (default 6).
    word_order: word n-gram order (default 0; 2 gives chrF++).
    beta: weight of recall relative to precision (default 2).
    remove_whitespace: ignore whitespace when extracting character n-grams (default True).
    eps_smoothing: smooth as in the reference chrF++.py implementation instead of as sacrebleu does (default False).
"""


# Duplicated in bleu.py and chrf.py so that each file works on its own with evaluate.load.
def reference_streams(references: list) -> list[list[str | None]]:
    """
    Per-example references -> sacrebleu's reference streams (stream k holds every example's k-th reference); an
    example with fewer references gets None in the later streams, which sacrebleu skips.
    """
    references = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
    if any(len(example) == 0 for example in references):
        raise ValueError("Every prediction needs at least one reference; got an empty list of references.")
    most = max(len(example) for example in references)
    return [[example[k] if k < len(example) else None for example in references] for k in range(most)]


class Chrf(evaluate.Metric):
    __doc__ = _DESCRIPTION

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
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
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
            reference_urls=["https://aclanthology.org/W15-3049"],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list,
        char_order: int = 6,
        word_order: int = 0,
        beta: int = 2,
        remove_whitespace: bool = True,
        eps_smoothing: bool = False,
    ) -> dict[str, float]:
        score = sacrebleu.corpus_chrf(
            predictions,
            reference_streams(references),
            char_order=char_order,
            word_order=word_order,
            beta=beta,
            remove_whitespace=remove_whitespace,
            eps_smoothing=eps_smoothing,
        )
        return {"chrf": score.score}
