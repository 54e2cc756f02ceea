import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from hf_genxfer.cli import main
from hf_genxfer.recipes import validate_recipe
from hf_genxfer.training.loop import train


@pytest.mark.parametrize("backbone", ["bart", "t5"])
def test_tiny_backbones_train_and_generate_through_the_wrapper(seq2seq_recipe_factory, backbone):
    raw = seq2seq_recipe_factory(backbone=backbone, max_steps=6, eval_every=3, report_to="tensorboard")
    metrics = train(validate_recipe(raw))
    out = raw["output_dir"]
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "metrics.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert set(metrics) >= {"exact_match", "chrf", "bleu", "examples", "num_examples"}
    assert metrics["num_examples"] == 8 and len(metrics["examples"]) == 3
    history = json.load(open(os.path.join(out, "training_history.json")))
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert any("validation_chrf" in h for h in history)  # evaluation with generation during training
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["model_type"] == "genxfer_seq2seq" and config["backbone"]["model_type"] == backbone


def test_fresh_process_auto_classes_generate_what_the_cli_prints(seq2seq_recipe_factory, tmp_path, capsys):
    raw = seq2seq_recipe_factory(max_steps=8, learning_rate=0.01)
    train(validate_recipe(raw))
    out = raw["output_dir"]
    assert main(["generate", out, "42", "907"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    cli = [line.split("\t", 1)[1] if "\t" in line else "" for line in printed]
    code = (
        "import sys, hf_genxfer\n"
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
        "m = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1]); t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "assert type(m).__name__ == 'Seq2SeqModel'\n"
        "ids = m.generate(**t(['42', '907'], return_tensors='pt', padding=True), max_new_tokens=128)\n"
        "print('\\n'.join(x.strip() for x in t.batch_decode(ids, skip_special_tokens=True)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n").split("\n") == cli

    assert main(["eval", out]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["num_examples"] == 8 and 0 <= scores["exact_match"] <= 1


@pytest.mark.parametrize(
    "options", [{}, {"group_by_length": True, "optimizer_implementation": "fused"}], ids=["defaults", "speed-options"]
)
def test_resume_continues_exactly(seq2seq_recipe_factory, options):
    straight = seq2seq_recipe_factory("straight", max_steps=4, **options)
    train(validate_recipe(straight))
    crashed = seq2seq_recipe_factory("crashed", max_steps=4, **options)
    train(validate_recipe(crashed), stop_after_steps=2)
    crashed["training"]["resume_from_checkpoint"] = "latest"
    train(validate_recipe(crashed))
    a = load_file(os.path.join(straight["output_dir"], "model.safetensors"))
    b = load_file(os.path.join(crashed["output_dir"], "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_early_stopping_stops_when_the_metric_stalls(seq2seq_recipe_factory):
    # A zero learning rate cannot improve the validation metric: the second evaluation ends the run.
    raw = seq2seq_recipe_factory(max_steps=50, learning_rate=1e-12, eval_every=2, early_stopping_patience=1)
    metrics = train(validate_recipe(raw))
    assert metrics["step"] == 4


@pytest.mark.parametrize("objective", ["text_infilling", "span_corruption"])
def test_denoising_objectives_train(seq2seq_recipe_factory, objective):
    raw = seq2seq_recipe_factory(max_steps=3)
    raw["data"]["objective"] = objective
    metrics = train(validate_recipe(raw))
    assert metrics["step"] == 3 and metrics["num_examples"] > 0
    example = metrics["examples"][0]
    assert example["source"] != example["reference"]  # the input is the noised text, the reference the original


def test_json_pairs_corpus(seq2seq_recipe_factory, tmp_path, capsys):
    path = tmp_path / "pairs.jsonl"
    rows = [{"digits": str(n), "words": f"number {n}"} for n in range(40)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    raw = seq2seq_recipe_factory(max_steps=2)
    raw["data"] = {
        "dataset": str(path),
        "source_column": "digits",
        "target_column": "words",
        "train_size": 30,
        "validation_size": 4,
        "test_size": 6,
    }
    metrics = train(validate_recipe(raw))
    assert metrics["num_examples"] == 6
    raw["data"]["target_column"] = "text"
    raw["output_dir"] = str(tmp_path / "bad_run")
    recipe_path = tmp_path / "bad.yaml"
    recipe_path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(recipe_path)]) == 2
    assert "no column 'text'" in capsys.readouterr().err


def test_denoising_pretraining_on_raw_text_then_fine_tuning_on_pairs(seq2seq_recipe_factory, tmp_path):
    from num2words import num2words

    corpus = tmp_path / "french.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": num2words(n, lang="fr")}) for n in range(0, 1000, 7)))
    pretrain = seq2seq_recipe_factory("pretrain", max_steps=3)
    pretrain["data"] = {
        "dataset": str(corpus),
        "target_column": "text",
        "objective": "text_infilling",
        "train_size": 100,
        "validation_size": 8,
        "test_size": 8,
        "tokenizer_languages": ["fr"],
    }
    metrics = train(validate_recipe(pretrain))
    assert metrics["num_examples"] == 8 and "<mask>" in metrics["examples"][0]["source"]
    finetune = seq2seq_recipe_factory("finetune", max_steps=2)
    finetune["init_from"] = pretrain["output_dir"]
    finetune["model"] = {}
    finetune["data"].update(language="fr", train_size=10)
    assert train(validate_recipe(finetune))["step"] == 2
