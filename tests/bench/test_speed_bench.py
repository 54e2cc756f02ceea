"""`genxfer bench speed` end to end with tiny models and a few steps: every ratio the JSON must hold, and the PNG."""

import json
import os

import pytest

from hf_genxfer.bench.speed import resolve_config
from hf_genxfer.bench.speed.memory import measure_memory
from hf_genxfer.cli import main

TINY_GAN = "{image_size: 8, base_width: 8, max_width: 16, layers_per_block: 1, latent_size: 16, num_classes: 10}"
TINY_BART = (
    "{d_model: 16, encoder_layers: 1, decoder_layers: 1, encoder_attention_heads: 2, decoder_attention_heads: 2, "
    "encoder_ffn_dim: 32, decoder_ffn_dim: 32}"
)
TINY = [
    "repetitions=2",
    "warmup_steps=1",
    "measure_memory=false",  # measured by the test below, on fewer processes
    f"gan_demo.model={TINY_GAN}",
    "gan_demo.batch_size=8",
    "gan_demo.steps=2",
    "gan_32.enabled=false",
    "gan_64_rgb.enabled=false",
    f"seq2seq_demo.backbone={TINY_BART}",
    "seq2seq_demo.train_size=64",
    "seq2seq_demo.batch_size=8",
    "seq2seq_demo.steps=2",
    "seq2seq_demo.generation_inputs=2",
    "seq2seq_demo.new_tokens=3",
    "seq2seq_demo.compile_generation=false",  # compiling takes 13 s here: tests/training/test_speed_paths.py (slow)
    "seq2seq_large.enabled=false",
    "threads=1",
]


def test_speed_bench_reports_every_ratio(tmp_path):
    out = tmp_path / "speed.json"
    args = ["bench", "speed", "--out", str(out)]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["machine"]["cpu"] and report["matmul_peak_gflops"] > 0

    assert set(report["gan"]) == {"gan_demo"}  # the disabled cases are left out
    for gan in report["gan"].values():
        assert set(gan["images_per_second"]) == {"ours", "ours_options", "plain"}
        assert all(rate > 0 for rate in gan["images_per_second"].values())
        assert len(gan["images_per_second_all"]["plain"]) == 2  # one rate per interleaved repetition
        assert set(gan["ratio_vs_plain"]) == {"ours", "ours_options"}
        assert gan["pipeline"]["ratio_vs_direct"] > 0
        assert gan["training_flops_per_image"] > 0 and 0 < gan["flops_share_of_matmul_peak"]["ours"] < 10

    seq2seq = report["seq2seq"]["seq2seq_demo"]
    assert set(seq2seq["target_tokens_per_second"]) == {"ours", "ours_options", "trainer", "plain"}
    assert set(seq2seq["ratio_vs_trainer"]) == set(seq2seq["ratio_vs_plain"]) == {"ours", "ours_options"}
    # Length-grouped batches (the options variant) compute less padding than random ones.
    assert seq2seq["padding_share"]["ours_options"] < seq2seq["padding_share"]["ours"]
    assert set(seq2seq["generation"]) == {"greedy_batch1", "greedy_batch2", "beam4_batch1", "beam4_batch2"}
    for entry in seq2seq["generation"].values():
        assert set(entry["tokens_per_second"]) == {"ours", "bare", "multitask"}  # no compile=True when switched off
        assert entry["ratio_ours_vs_bare"] > 0 and entry["multitask_overhead"] < 1

    names = [row["name"] for row in report["targets"]]
    assert "gan_demo: GAN images/s, ours / plain loop" in names
    assert "seq2seq_demo: Seq2Seq target tokens/s, ours / Seq2SeqTrainer" in names
    assert any("multi-task routing overhead" in name for name in names)
    assert report["plots"] == ["speed_ratios.png"] and os.path.getsize(tmp_path / "speed_ratios.png") > 0
    assert not (tmp_path / "speed_runs").exists()  # the methods' scratch folders are removed


def test_a_bad_speed_field_is_one_sentence(capsys):
    assert main(["bench", "speed", "--set", "gan_demo.stepz=3"]) == 2
    assert "stepz" in capsys.readouterr().err


def test_peak_memory_is_measured_in_a_fresh_process_per_method(tmp_path):
    config = resolve_config(overrides=[o for o in TINY if o.startswith(("gan_demo.", "seq2seq_demo."))])
    figures = {
        "gan plain": measure_memory("gan", config.gan_demo, "plain", 1, str(tmp_path), 1),
        "seq2seq ours": measure_memory("seq2seq", config.seq2seq_demo, "ours", 1, str(tmp_path), 1),
    }
    for figure in figures.values():
        # The process's own peak (not its parent's, which fork + exec would carry over in ru_maxrss) over a
        # baseline taken after the imports every method shares.
        assert 0 < figure["training_mib"] < figure["peak_mib"] and figure["baseline_mib"] > 0
        assert figure["peak_mib"] == pytest.approx(figure["baseline_mib"] + figure["training_mib"], abs=0.2)
