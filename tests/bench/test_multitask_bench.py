"""`genxfer bench multitask` end to end with tiny models and a few steps: the JSON's structure, the PNGs, Δp."""

import json
import os

import pytest

from hf_genxfer.bench.multitask import delta_p, resolve_config
from hf_genxfer.cli import main
from hf_genxfer.recipes import RecipeError

TINY_GAN = "{image_size: 8, base_width: 8, max_width: 16, layers_per_block: 1, latent_size: 16, num_classes: 10}"
TINY_BART = (
    "{backbone: {d_model: 16, encoder_layers: 1, decoder_layers: 1, encoder_attention_heads: 2, "
    "decoder_attention_heads: 2, encoder_ffn_dim: 32, decoder_ffn_dim: 32}}"
)
TINY = [
    "workers=1",
    f"seq2seq.model={TINY_BART}",
    "seq2seq.languages=[en,es]",
    "seq2seq.low_resource_language=es",
    "seq2seq.train_size=16",
    "seq2seq.low_resource_train_size=4",
    "seq2seq.high=1000",
    "seq2seq.validation_size=2",
    "seq2seq.test_size=4",
    "seq2seq.steps=2",
    "seq2seq.batch_size=4",
    "seq2seq.multitask_steps=2",
    "seq2seq.max_new_tokens=8",
    "seq2seq.modes=[shared_encoder,shared_structure]",
    "seq2seq.low_resource_modes=[shared_encoder]",
    "seq2seq.weightings=[uncertainty]",
    f"gan.model={TINY_GAN}",
    "gan.steps=2",
    "gan.multitask_steps=2",
    "gan.add_task_steps=2",
    "gan.batch_size=8",
    "gan.shared_blocks=[1]",
    "gan.num_samples=32",
    "gan.seeds=[0,1]",
]


def test_bench_multitask_end_to_end(tmp_path, capsys):
    out = tmp_path / "multitask.json"
    arguments = ["bench", "multitask", "--out", str(out)]
    for assignment in TINY:
        arguments += ["--set", assignment]
    assert main(arguments) == 0
    report = json.loads(out.read_text())
    assert {"date", "machine", "mode", "config", "seq2seq", "gan", "targets", "wall_seconds"} <= set(report)
    assert report["mode"] == "full" and report["config"]["seq2seq"]["languages"] == ["en", "es"]

    s2s = report["seq2seq"]
    assert set(s2s["sharing"]["balanced"]) == {"shared_encoder", "shared_structure"}
    assert set(s2s["sharing"]["low_resource"]) == {"shared_encoder"}
    assert s2s["single_task"]["low_resource"]["es"]["train_size"] == 4
    assert s2s["single_task"]["low_resource"]["en"] == s2s["single_task"]["balanced"]["en"]  # reused, not rerun
    encoder = s2s["sharing"]["balanced"]["shared_encoder"]
    assert set(encoder["per_task"]) == {"en", "es"} and {"exact_match", "chrf"} <= set(encoder["per_task"]["es"])
    assert 0 < encoder["parameter_ratio"] < 1 and "delta_p" in encoder and "chrf" in encoder["delta_p_by_metric"]
    assert "chrf" in s2s["sharing"]["low_resource"]["shared_encoder"]["low_resource_gain"]
    assert s2s["best_sharing"] in ("shared_encoder", "shared_structure")
    assert s2s["weighting"]["sharing"] == s2s["best_sharing"]
    assert set(s2s["weighting"]["runs"]) == {"equal", "uncertainty"}

    gan = report["gan"]
    assert set(gan["separate"]) == {"low", "high"}
    shared = gan["multitask"]["shared_blocks_1"]
    assert set(shared["per_task"]) == {"low", "high"} and shared["per_task"]["low"]["fid"] >= 0
    assert 0 < shared["parameter_ratio"] < 1 and shared["generator_parameter_ratio"] > 0
    # Each arm is trained once per seed; the tables hold the mean over seeds, each seed's value beside it.
    assert gan["seeds"] == [0, 1]
    for scores in [*gan["separate"].values(), *shared["per_task"].values()]:
        assert len(scores["fid_per_seed"]) == 2
        assert scores["fid"] == pytest.approx(sum(scores["fid_per_seed"]) / 2)
    assert len(shared["mean_fid_ratio_per_seed"]) == 2
    assert shared["mean_fid_ratio"] == pytest.approx(
        shared["mean"]["fid"] / gan["separate_total"]["mean_fid"], abs=1e-4
    )
    assert {"gan/single/low/seed1", "gan/multi/shared_blocks_1/seed1"} <= set(report["job_seconds"])
    add = gan["add_task"]
    assert add["new_task"] == "odd" and set(add["runs"]) == {"frozen_shared", "unfrozen"}
    frozen = add["runs"]["frozen_shared"]
    assert set(frozen["forgetting_fid"]) == {"low", "high"} and frozen["new_task"]["fid"] >= 0
    # The frozen run leaves the old tasks' generator parts untouched: their FID does not move.
    assert all(abs(v) < 1e-6 for v in frozen["forgetting_fid"].values())

    assert report["targets"] and all({"name", "value", "threshold", "met"} <= set(t) for t in report["targets"])
    for name in ("seq2seq_per_task", "gan_per_task", "delta_p"):
        path = tmp_path / f"multitask_{name}.png"
        assert path.is_file() and os.path.getsize(path) > 0
    assert "targets" in capsys.readouterr().out
    assert report["reused_jobs"] == []

    # --resume takes every finished job from its file; a changed field reruns the jobs of its section.
    assert main([*arguments, "--resume", "--set", "gan.add_task_steps=3"]) == 0
    resumed = json.loads(out.read_text())
    assert set(resumed["reused_jobs"]) == {name for name in report["job_seconds"] if name.startswith("s2s/")}
    assert resumed["seq2seq"]["sharing"] == report["seq2seq"]["sharing"]
    assert resumed["gan"]["add_task"]["runs"]["frozen_shared"]["steps"] == 3


def test_delta_p_on_a_hand_example():
    single = {"a": {"acc": 0.5, "fid": 10.0}, "b": {"acc": 0.5, "fid": 20.0}}
    multi = {"a": {"acc": 0.6, "fid": 9.0}, "b": {"acc": 0.45, "fid": 22.0}}
    # acc: a +20%, b -10% -> +5; fid (lower is better): a +10%, b -10% -> 0; both: a +15%, b -10% -> +2.5
    assert delta_p(multi, single, ["acc"]) == pytest.approx(5.0)
    assert delta_p(multi, single, ["fid"]) == pytest.approx(0.0)
    assert delta_p(multi, single, ["acc", "fid"]) == pytest.approx(2.5)
    # A zero single-task value has no relative gain: that term is left out.
    assert delta_p({"a": {"acc": 0.3}}, {"a": {"acc": 0.0}}, ["acc"]) is None


def test_quick_mode_and_bad_fields():
    quick = resolve_config(quick=True)
    assert quick.seq2seq.steps < resolve_config().seq2seq.steps
    with pytest.raises(RecipeError, match="seq2seq.weightings"):
        resolve_config(overrides=["seq2seq.weightings=[magic]"])
    with pytest.raises(RecipeError, match="gan.seeds"):
        resolve_config(overrides=["gan.seeds=[0,0]"])


def test_bench_multitask_bad_field_exits_2_with_one_sentence(tmp_path, capsys):
    out = str(tmp_path / "m.json")
    assert main(["bench", "multitask", "--out", out, "--set", "seq2seq.languges=[en,fr]"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "seq2seq.languges" in error and "languages" in error
    assert not os.path.exists(out)
