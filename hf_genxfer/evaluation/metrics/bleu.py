"""Corpus BLEU computed by sacrebleu, as an `evaluate.Metric` that needs no download (unlike `evaluate.load("sacrebleu")`)."""

from __future__ import annotations

import datasets
import evaluate
import sacrebleu

_CITATION = """\
@inproceedings{post-2018-call,
  title = "A Call for Clarity in Reporting {BLEU} Scores",
  author = "Post, Matt",
  booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
  year = "2018",
  url = "https://www.aclweb.org/anthology/W18-6319",
  pages = "186--191",
}
"""

_DESCRIPTION = """\
Corpus-level BLEU of `sacrebleu.corpus_bleu`, on a 0-100 scale. Returns {"bleu": score, "counts", "totals",
"precisions", "brevity_penalty", "system_length", "reference_length"}, identical to sacrebleu's own numbers.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of strings, one hypothesis per example.
    references: list of strings (one reference each) or list of lists of strings (one or more references each).
    tokenize: sacrebleu tokenizer, default "13a" ("zh", "ja-mecab", "intl", "char", "none", ...).
    lowercase: compare lowercased text (default False).
    smooth_method: "exp" (default), "floor", "add-k" or "none"; smooth_value goes with "floor" and "add-k".
    force: score text that looks tokenized already without a warning (default False).
    use_effective_order: only count n-gram orders that have matches (default False).
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


class Bleu(evaluate.Metric):
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
            reference_urls=["https://aclanthology.org/W18-6319"],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list,
        tokenize: str = "13a",
        lowercase: bool = False,
        smooth_method: str = "exp",
        smooth_value: float | None = None,
        force: bool = False,
        use_effective_order: bool = False,
    ) -> dict:
        score = sacrebleu.corpus_bleu(
            predictions,
            reference_streams(references),
            smooth_method=smooth_method,
            smooth_value=smooth_value,
            force=force,
            lowercase=lowercase,
            tokenize=tokenize,
            use_effective_order=use_effective_order,
        )
        return {
            "bleu": score.score,
            "counts": score.counts,
            "totals": score.totals,
            "precisions": score.precisions,
            "brevity_penalty": score.bp,
            "system_length": score.sys_len,
            "reference_length": score.ref_len,
        }
