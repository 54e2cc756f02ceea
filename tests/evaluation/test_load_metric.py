import sys

import evaluate
import pytest

from hf_genxfer.evaluation import METRICS_DIR, load_metric


@pytest.mark.parametrize("name", ["fid", "kid", "bleu", "chrf", "exact_match"])
def test_load_metric_builds_every_metric(name, tmp_path):
    assert isinstance(load_metric(name, cache_dir=str(tmp_path)), evaluate.Metric)


def test_load_metric_rejects_an_unknown_name_in_one_sentence_listing_the_valid_ones():
    with pytest.raises(ValueError) as error:
        load_metric("sacrebleu")
    assert str(error.value) == "Unknown metric 'sacrebleu'; valid names are: fid, kid, bleu, chrf, exact_match."


def test_evaluate_load_works_offline_on_the_metric_files(monkeypatch, tmp_path, digits):
    # evaluate copies a local script into its modules cache and imports it from there; no network is involved.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path / "modules")
    monkeypatch.setattr(sys, "path", list(sys.path))
    fid = evaluate.load(str(METRICS_DIR / "fid.py"), cache_dir=str(tmp_path))
    images = digits[0]
    expected = load_metric("fid").compute(predictions=images[:500], references=images[500:])
    assert fid.compute(predictions=images[:500], references=images[500:]) == expected
    bleu = evaluate.load(str(METRICS_DIR / "bleu.py"), cache_dir=str(tmp_path))
    assert bleu.compute(predictions=["a b c d"], references=["a b c d"])["bleu"] == pytest.approx(100)
