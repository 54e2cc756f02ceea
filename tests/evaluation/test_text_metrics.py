import pytest
import sacrebleu

from hf_genxfer.evaluation import load_metric

PREDICTIONS = ["the cat sat on the mat", "a quick brown fox jumps", "hello there", "Thirty-two"]
REFERENCES = [
    ["the cat sat on a mat", "a cat was sitting on the mat"],
    ["the quick brown fox jumped"],
    ["hello there", "hi"],
    ["thirty-two"],
]
# The same references as sacrebleu's streams: stream k holds each example's k-th reference (None where there is none).
STREAMS = [[references[0] for references in REFERENCES], ["a cat was sitting on the mat", None, "hi", None]]


@pytest.fixture
def metric(tmp_path):
    return lambda name: load_metric(name, cache_dir=str(tmp_path))


@pytest.mark.parametrize("options", [{}, {"lowercase": True}, {"tokenize": "char", "smooth_method": "floor"}])
def test_bleu_equals_sacrebleu(metric, options):
    result = metric("bleu").compute(predictions=PREDICTIONS, references=REFERENCES, **options)
    expected = sacrebleu.corpus_bleu(PREDICTIONS, STREAMS, **options)
    assert result["bleu"] == expected.score
    assert result["precisions"] == expected.precisions and result["brevity_penalty"] == expected.bp


def test_bleu_takes_one_reference_string_per_example(metric):
    single = [references[0] for references in REFERENCES]
    result = metric("bleu").compute(predictions=PREDICTIONS, references=single)
    assert result["bleu"] == sacrebleu.corpus_bleu(PREDICTIONS, [single]).score


@pytest.mark.parametrize("options", [{}, {"word_order": 2}, {"char_order": 4, "beta": 1}])
def test_chrf_equals_sacrebleu(metric, options):
    result = metric("chrf").compute(predictions=PREDICTIONS, references=REFERENCES, **options)
    assert result == {"chrf": sacrebleu.corpus_chrf(PREDICTIONS, STREAMS, **options).score}
    single = [references[0] for references in REFERENCES]
    result = metric("chrf").compute(predictions=PREDICTIONS, references=single, **options)
    assert result == {"chrf": sacrebleu.corpus_chrf(PREDICTIONS, [single], **options).score}


def test_exact_match_on_a_hand_example(metric):
    exact_match = metric("exact_match")
    predictions = [" forty-two ", "Seven", "three", "one"]
    references = ["forty-two", "seven", "four", "one\n"]
    assert exact_match.compute(predictions=predictions, references=references) == {"exact_match": 0.5}
    assert exact_match.compute(predictions=predictions, references=references, ignore_case=True) == {
        "exact_match": 0.75
    }
    several = [["42", "forty-two"], ["7"], ["four", "three"], ["uno"]]
    assert exact_match.compute(predictions=predictions, references=several) == {"exact_match": 0.5}
