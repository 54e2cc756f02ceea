"""`genxfer bench transfer` end to end with tiny models and a few steps: the JSON's structure and the PNGs."""

import dataclasses
import json
import os

from hf_genxfer.cli import main

TINY_GAN = "{image_size: 8, base_width: 8, max_width: 16, layers_per_block: 1, latent_size: 16, num_classes: %d}"
TINY_BART = (
    "{backbone: {d_model: 16, encoder_layers: 1, decoder_layers: 1, encoder_attention_heads: 2, "
    "decoder_attention_heads: 2, encoder_ffn_dim: 32, decoder_ffn_dim: 32}}"
)
TINY = [
    "workers=1",
    f"gan_digits.model={TINY_GAN % 10}",
    "gan_digits.source_steps=4",
    "gan_digits.eval_steps=[2,4]",
    "gan_digits.report_steps=[2,4]",
    "gan_digits.batch_size=8",
    "gan_digits.num_samples=32",
    "gan_digits.strategies=[source,scratch,full,lora+diffaugment]",
    "gan_digits.lora_sweep=[{lora_r: 2, lora_modules_to_save: [generator.class_embedding], lora_use_dora: true}]",
    f"gan_digits_reversed.model={TINY_GAN % 10}",
    "gan_digits_reversed.source_steps=2",
    "gan_digits_reversed.eval_steps=[2]",
    "gan_digits_reversed.report_steps=[2]",
    "gan_digits_reversed.batch_size=8",
    "gan_digits_reversed.num_samples=32",
    f"gan_glyphs.model={TINY_GAN[:-1] % 62}, style_mapping_layers: 1}}",
    "gan_glyphs.style_frozen_blocks=1",
    "gan_glyphs.cdc_batch_size=4",
    "gan_glyphs.source_fonts=[DejaVuSans,cmr10]",
    "gan_glyphs.source_samples_per_glyph=1",
    "gan_glyphs.eval_samples_per_glyph=2",
    "gan_glyphs.source_steps=2",
    "gan_glyphs.source_eval_every=1",
    "gan_glyphs.eval_steps=[2]",
    "gan_glyphs.report_steps=[2]",
    "gan_glyphs.batch_size=8",
    "gan_glyphs.num_samples=62",
    "gan_glyphs.strategies=[source,scratch,freezed,full+cdc,style,latent,latent+bias]",
    f"seq2seq.model={TINY_BART}",
    "seq2seq.source_train_size=64",
    "seq2seq.high=1000",
    "seq2seq.source_steps=2",
    "seq2seq.target_train_size=8",
    "seq2seq.validation_size=4",
    "seq2seq.test_size=8",
    "seq2seq.eval_every=1",
    "seq2seq.report_steps=[1,2]",
    "seq2seq.batch_size=4",
    "seq2seq.max_new_tokens=8",
    "seq2seq.strategies=[source,scratch,lora]",
    "seq2seq.data_efficiency_sizes=[4,8]",
    "seq2seq.data_efficiency_steps=2",
    "seq2seq.second_target_strategies=[source,scratch,lora]",
]


def test_bench_transfer_end_to_end(tmp_path, capsys):
    out = tmp_path / "transfer.json"
    arguments = ["bench", "transfer", "--out", str(out)]
    for assignment in TINY:
        arguments += ["--set", assignment]
    assert main(arguments) == 0
    report = json.loads(out.read_text())
    assert {"date", "machine", "mode", "config", "gan_digits", "gan_glyphs", "seq2seq", "targets"} <= set(report)
    assert report["mode"] == "full" and report["config"]["seq2seq"]["target_language"] == "fr"

    digits = report["gan_digits"]["strategies"]
    assert list(digits) == ["source", "scratch", "full", "lora+diffaugment"]
    for result in digits.values():
        assert set(result["at_steps"]) == {"2", "4"}
        assert result["final"]["fid"] >= 0 and result["final"]["kid"] is not None
        assert {"steps", "wall_seconds", "trainable_fraction", "steps_to_scratch_final_fid"} <= set(result)
    assert digits["lora+diffaugment"]["generator_trainable_fraction"] < 1
    assert digits["full"]["generator_trainable_fraction"] == 1
    assert report["config"]["gan_digits"]["fresh_discriminator"] is True
    glyphs = report["gan_glyphs"]["strategies"]
    assert 0 <= glyphs["freezed"]["final"]["unseen_accuracy"] <= 1
    for strategy in glyphs.values():  # style beside content: the font classifier's FID and accuracy
        final = strategy["final"]
        assert 0 <= final["unseen_style_accuracy"] <= 1 and final["fid_style"] >= 0 and "kid_style" in final
    assert report["gan_glyphs"]["num_unseen_characters"] == 52
    for strategy in glyphs.values():  # diversity: the mean pairwise style distance within each character's samples
        assert strategy["final"]["unseen_diversity"] >= 0 and strategy["final"]["seen_diversity"] >= 0
    assert report["gan_glyphs"]["diversity_real_unseen"] > 0 and report["gan_glyphs"]["num_shots"] == 10
    assert 0 <= report["gan_glyphs"]["source_content_accuracy"] <= 1
    assert glyphs["style"]["generator_trainable_fraction"] < 1  # embeddings, mappings and block 0 frozen
    assert glyphs["full+cdc"]["generator_trainable_fraction"] == 1  # CDC adds a loss, it freezes nothing
    assert glyphs["full+cdc"]["settings"] == {"learning_rate": 0.0005}  # the default strategy_settings, recorded
    # The LoRA sweep runs as more LoRA strategies, recorded with their settings.
    (sweep,) = report["gan_digits"]["lora_sweep"]
    assert sweep["settings"]["lora_r"] == 2 and sweep["final"]["fid"] >= 0
    assert sweep["settings"]["lora_use_dora"] is True
    assert sweep["generator_trainable_fraction"] < digits["lora+diffaugment"]["generator_trainable_fraction"] + 0.05
    reversed_digits = report["gan_digits_reversed"]
    assert reversed_digits["source_classes"] == [5, 6, 7, 8, 9] and reversed_digits["target_classes"] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert list(reversed_digits["strategies"]) == ["source", "full", "lora"]
    names = [t["name"] for t in report["targets"]]
    assert any(n.startswith("gan_digits_reversed: lora final FID / full's") for n in names)
    assert any("unseen-character content accuracy" in n for n in names)
    assert set(report["glyph_checks_by_strategy"]) == {"freezed", "full+cdc", "style", "latent", "latent+bias"}
    assert glyphs["latent"]["generator_trainable_fraction"] < 0.01  # the latent's shift and scale only
    # + the modulations' biases: more than the latent alone, far less than style-only
    latent_bias = glyphs["latent+bias"]["generator_trainable_parameters"]
    assert glyphs["latent"]["generator_trainable_parameters"] < latent_bias
    assert latent_bias < glyphs["style"]["generator_trainable_parameters"]
    # The source is trained in segments of source_eval_every steps, its own-font accuracy recorded after each.
    curve = report["gan_glyphs"]["source_training"]["content_accuracy_curve"]
    assert [p["step"] for p in curve] == [1, 2] and curve[-1]["content_accuracy"] == report["gan_glyphs"][
        "source_content_accuracy"
    ]
    assert any("own fonts" in n for n in names)
    seq2seq = report["seq2seq"]
    assert seq2seq["strategies"]["lora"]["trainable_fraction"] < 1
    assert {"exact_match", "chrf"} <= set(seq2seq["strategies"]["scratch"]["at_steps"]["2"])
    assert [p["train_size"] for p in seq2seq["data_efficiency"]["points"]] == [4, 8]
    assert all({"name", "value", "threshold", "met"} <= set(t) for t in report["targets"])
    # The second target (Russian) in another script: transfer extends the source's vocabulary.
    russian = seq2seq["second_target"]
    assert russian["language"] == "ru" and list(russian["strategies"]) == ["source", "scratch", "lora"]
    assert russian["strategies"]["lora"]["added_tokens"] > 10
    assert any(t["name"].startswith("seq2seq ru: best transfer") for t in report["targets"])

    names = ("gan_digits", "gan_digits_reversed", "gan_glyphs", "gan_glyphs_samples", "seq2seq", "seq2seq_ru")
    for name in (*names, "data_efficiency"):
        path = tmp_path / f"transfer_{name}.png"
        assert path.is_file() and os.path.getsize(path) > 0
    printed = capsys.readouterr().out
    assert "targets" in printed and "with {'learning_rate': 0.0005}" in printed

    # Every strategy is a job of its own (prepare, units, finish); each scenario's worker time is the sum of its jobs'.
    jobs = report["job_seconds"]
    assert {"gan_glyphs/prepare", "gan_glyphs/full+cdc", "gan_glyphs", "seq2seq/ru/lora"} <= set(jobs)
    assert {"seq2seq/efficiency/scratch/4", "seq2seq/efficiency/lora/4"} <= set(jobs)
    assert "seq2seq/efficiency/lora/8" not in jobs  # the strategy table's own run at that size and step count
    assert "gan_digits/lora_sweep0" in jobs
    own = [seconds for job, seconds in jobs.items() if job.startswith("gan_glyphs/") or job == "gan_glyphs"]
    assert abs(report["gan_glyphs"]["worker_seconds"] - sum(own)) < 0.5

    # --resume (the shared job schedule): finished jobs are reused; a changed field reruns its scenario's jobs only,
    # and a field that only the strategies read (l2sp_weight) keeps the scenario's source (its prepare job).
    changes = ["gan_digits_reversed.batch_size=4", "gan_digits.l2sp_weight=0.5"]
    assert main([*arguments, "--resume", *(a for c in changes for a in ("--set", c))]) == 0
    resumed = json.loads(out.read_text())
    reused = set(resumed["reused_jobs"])
    rerun = {job for job in jobs if job.split("/")[0] in ("gan_digits", "gan_digits_reversed")} - {
        "gan_digits/prepare"
    }
    assert reused == set(jobs) - rerun
    assert resumed["seq2seq"] == report["seq2seq"] and resumed["config"]["gan_digits_reversed"]["batch_size"] == 4


def test_bench_transfer_bad_field_exits_2_with_one_sentence(tmp_path, capsys):
    out = str(tmp_path / "t.json")
    assert main(["bench", "transfer", "--out", out, "--set", "gan_digits.target_shot=5"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "gan_digits.target_shot" in error and "target_shots" in error
    assert not os.path.exists(out)


def test_transfer_bench_schedulers_are_checked_and_span_the_whole_run(tmp_path, monkeypatch):
    import pytest

    from hf_genxfer.bench.transfer import gan_jobs
    from hf_genxfer.bench.transfer.config import resolve_config
    from hf_genxfer.errors import RecipeError

    with pytest.raises(RecipeError, match="gan_glyphs.lr_scheduler 'cosin' .* did you mean 'cosine'"):
        resolve_config(False, ["gan_glyphs.lr_scheduler=cosin"])
    section = resolve_config(False, ["gan_digits.lora_lr_scheduler=cosine"]).gan_digits
    assert section.lora_lr_scheduler == "cosine" and section.lr_scheduler == "constant"
    seen = []

    def fake_train(raw):
        seen.append(dict(raw["training"]))
        raise StopIteration  # the recipe of the first segment is all this test reads

    monkeypatch.setattr(gan_jobs, "train_recipe", fake_train)
    for strategy in ("lora", "full"):
        with pytest.raises(StopIteration):
            gan_jobs._run_gan_strategy("t", strategy, strategy, section, str(tmp_path), "src", {}, None, "digits")
    assert seen[0]["lr_scheduler"] == "cosine" and seen[0]["lr_schedule_steps"] == section.eval_steps[-1]
    assert "lr_scheduler" not in seen[1]  # full keeps the section's constant rate


def test_glyph_strategy_names_are_checked():
    """+bias trains the modulations' biases beside the latent; every other base trains them already, so it is
    refused there with the rule in the sentence; a bad source_eval_every too."""
    import pytest

    from hf_genxfer.bench.transfer.config import resolve_config
    from hf_genxfer.bench.transfer.gan_jobs import _gan_transfer
    from hf_genxfer.errors import RecipeError

    with pytest.raises(RecipeError, match=r"'full\+bias'.*\+bias only after latent"):
        resolve_config(False, ["gan_glyphs.strategies=[full+bias]"])
    with pytest.raises(RecipeError, match="source_eval_every must be at least 1"):
        resolve_config(False, ["gan_glyphs.source_eval_every=0"])
    section = resolve_config(False, ["gan_glyphs.strategies=[latent+bias+cdc]"]).gan_glyphs
    transfer = _gan_transfer("latent+bias+cdc", section)
    assert transfer["freeze_generator_blocks"] == 0 and transfer["cdc_weight"] == section.cdc_weight
    assert "generator.blocks.*.modulations.*.weight" in transfer["freeze"]
    # The bench's latent+bias and the shipped recipe freeze the same: the two spellings of one strategy stay twins.
    import yaml

    import hf_genxfer

    path = os.path.join(os.path.dirname(hf_genxfer.__file__), "recipe_files", "gan_glyphs_transfer_latent_bias.yaml")
    shipped = yaml.safe_load(open(path))
    assert {k: transfer[k] for k in ("freeze_generator_blocks", "freeze")} == shipped["transfer"]
    assert shipped["training"]["learning_rate"] == section.bias_learning_rate
    assert shipped["training"]["latent_learning_rate"] == section.latent_learning_rate


def test_strategies_cut_from_the_full_run_still_run_with_set():
    """The full run's defaults leave some strategies out to fit the hour; each is still a valid `--set` choice and
    becomes a job of its scenario, and the quick run keeps the glyph ablations."""
    from hf_genxfer.bench.transfer import SCENARIOS
    from hf_genxfer.bench.transfer.config import (
        GAN_STRATEGIES,
        GLYPH_STRATEGIES,
        SEQ2SEQ_STRATEGIES,
        resolve_config,
    )

    full = resolve_config(False, [])
    cut = {
        "gan_digits": set(GAN_STRATEGIES) - set(full.gan_digits.strategies),
        "gan_glyphs": set(GLYPH_STRATEGIES) - set(full.gan_glyphs.strategies),
        "seq2seq": set(SEQ2SEQ_STRATEGIES) - set(full.seq2seq.strategies),
    }
    assert cut == {
        "gan_digits": {"freezed"},
        "gan_glyphs": {"latent", "latent+bias"},
        "seq2seq": {"frozen_encoder", "l2sp", "ewc"},
    }
    assert (
        full.seq2seq.data_efficiency_sizes == [50, 200, 1000] and "full" not in full.seq2seq.second_target_strategies
    )
    # The targets' strategies stay in: the source, full fine-tuning and LoRA; the glyphs' scratch and best two.
    for section in (full.gan_digits, full.gan_digits_reversed, full.seq2seq):
        assert {"source", "full", "lora"} <= set(section.strategies)
    assert {"source", "scratch", "full+cdc", "latent+bias+cdc"} <= set(full.gan_glyphs.strategies)
    restored = resolve_config(
        False,
        [f"{name}.strategies=[{','.join(['source', *sorted(names)])}]" for name, names in cut.items()],
    )
    for name, names in cut.items():
        section = getattr(restored, name)
        assert set(section.strategies) == {"source", *names}
        first_round = SCENARIOS[name].rounds[0](section, {}, {})  # the strategy jobs
        assert names <= set(first_round)
    assert {"latent", "latent+bias"} <= set(resolve_config(True, []).gan_glyphs.strategies)


def test_lora_use_dora_reaches_the_recipe():
    """`lora_use_dora`, as a field or a sweep entry (applied as the sweep applies it), becomes the recipe's
    `transfer.lora.use_dora` (PEFT's DoRA); without it the recipe has plain LoRA."""
    from hf_genxfer.bench.transfer.config import resolve_config
    from hf_genxfer.bench.transfer.gan_jobs import _gan_transfer

    digits = resolve_config(False, ["gan_digits.lora_use_dora=false", "gan_digits.lora_sweep=[{lora_use_dora: true}]"])
    digits = digits.gan_digits
    assert "use_dora" not in _gan_transfer("lora", digits)["lora"]
    varied = dataclasses.replace(digits, **digits.lora_sweep[0])
    assert _gan_transfer("lora", varied)["lora"]["use_dora"] is True
    assert _gan_transfer("lora", resolve_config(False, []).gan_digits)["lora"]["use_dora"] is True  # the default


def test_loraplus_ratio_reaches_the_recipe():
    """`loraplus_lr_ratio` (the digits' default 4, off with null, or a sweep entry, on both digit splits) becomes the
    recipe's `transfer.lora.loraplus_lr_ratio`, and the recipe validates; the glyphs' LoRA has none by default."""
    from hf_genxfer.bench.transfer.config import resolve_config
    from hf_genxfer.bench.transfer.gan_jobs import _gan_transfer
    from hf_genxfer.recipes import validate_recipe

    defaults = resolve_config(False, [])
    for section in (defaults.gan_digits, defaults.gan_digits_reversed):
        assert _gan_transfer("lora", section)["lora"]["loraplus_lr_ratio"] == 4.0
    assert "loraplus_lr_ratio" not in _gan_transfer("lora", defaults.gan_glyphs)["lora"]
    digits = resolve_config(
        False, ["gan_digits.loraplus_lr_ratio=null", "gan_digits.lora_sweep=[{loraplus_lr_ratio: 16}]"]
    ).gan_digits
    assert "loraplus_lr_ratio" not in _gan_transfer("lora", digits)["lora"]
    varied = dataclasses.replace(digits, **digits.lora_sweep[0])
    transfer = _gan_transfer("lora", varied)
    assert transfer["lora"]["loraplus_lr_ratio"] == 16
    recipe = validate_recipe({"family": "gan", "output_dir": "out", "init_from": "src", "transfer": transfer})
    assert recipe.transfer.lora.loraplus_lr_ratio == 16


def test_strategy_settings_reach_only_their_strategy(monkeypatch):
    """`strategy_settings` gives one strategy's run its own fields (the others keep the section's) and is recorded in
    its result; bad entries get one sentence; the shipped CDC recipe trains at the bench's full+cdc rate."""
    import pytest
    import yaml

    import hf_genxfer
    from hf_genxfer.bench.transfer import gan_jobs
    from hf_genxfer.bench.transfer.config import resolve_config
    from hf_genxfer.errors import RecipeError

    seen = {}

    def fake_run(scenario, label, strategy, section, *rest):
        seen[label] = section
        return {"final": {}}

    monkeypatch.setattr(gan_jobs, "_run_gan_strategy", fake_run)
    monkeypatch.setattr(gan_jobs, "_digits_scorer", lambda section, prepared: (None, "digits"))
    section = resolve_config(False, ["gan_digits.strategy_settings={full: {learning_rate: 5e-4, ewc_weight: 3}}"])
    section = section.gan_digits
    prepared = {"work": "w", "source_dir": "s", "target_data": {}}
    full = gan_jobs.run_gan_unit("gan_digits", section, prepared, "full")
    scratch = gan_jobs.run_gan_unit("gan_digits", section, prepared, "scratch")
    assert seen["full"].learning_rate == 5e-4 and seen["full"].ewc_weight == 3  # "5e-4" as users write it
    assert seen["scratch"] == section and "settings" not in scratch
    assert full["settings"] == {"learning_rate": 5e-4, "ewc_weight": 3}
    for bad, message in (
        ("{source: {learning_rate: 0.001}}", "settings for 'source', which is not trained"),
        ("{full: {batch_size: 8}}", r"sets \['batch_size'\]; a strategy's settings may set lora_r"),
        ("{full: {latent_learning_rate: 0.01}}", r"sets \['latent_learning_rate'\]"),  # a glyphs-only field
        ("{ful: {learning_rate: 0.001}}", "use source, scratch, or one of"),
        ("{full: {lr_scheduler: sawtooth}}", "lr_scheduler"),
    ):
        with pytest.raises(RecipeError, match=message):
            resolve_config(False, [f"gan_digits.strategy_settings={bad}"])
    glyphs = resolve_config(False, []).gan_glyphs
    path = os.path.join(os.path.dirname(hf_genxfer.__file__), "recipe_files", "gan_glyphs_transfer_cdc.yaml")
    rate = yaml.safe_load(open(path))["training"]["learning_rate"]
    assert rate == glyphs.strategy_settings["full+cdc"]["learning_rate"] != glyphs.learning_rate


def test_a_scenario_runs_as_rounds_of_jobs(monkeypatch):
    """prepare, then each round of units once the round before is done (seeing its results), an empty round, finish."""
    from hf_genxfer.bench import transfer
    from hf_genxfer.bench.core import JobSchedule

    ran = []
    fake = transfer.Scenario(
        prepare=lambda scenario, section, work: ran.append("prepare") or {"units": 2},
        rounds=(
            lambda section, prepared, done: [f"a{i}" for i in range(prepared["units"])],
            lambda section, prepared, done: [f"b_after_{'_'.join(sorted(done))}"],
            lambda section, prepared, done: [],
        ),
        run=lambda scenario, section, prepared, unit: ran.append(unit) or {"unit": unit},
        finish=lambda scenario, section, prepared, units: {"units": sorted(units), "ran": list(ran)},
    )
    monkeypatch.setitem(transfer.SCENARIOS, "fake", fake)
    schedule = JobSchedule()
    transfer.plan_scenario(schedule, "fake", None, "unused", 0)
    results = schedule.run(1, 1)
    assert results["fake"] == {"units": ["a0", "a1", "b_after_a0_a1"], "ran": ["prepare", "a0", "a1", "b_after_a0_a1"]}
    assert set(schedule.seconds) == {"fake/prepare", "fake/a0", "fake/a1", "fake/b_after_a0_a1", "fake"}


def _writes_a_folder(folder: str) -> dict:
    os.makedirs(folder, exist_ok=True)
    return {"outputs": [folder]}


def test_a_resumed_job_whose_outputs_are_gone_runs_again(tmp_path):
    from hf_genxfer.bench.core import JobSchedule

    def run(resume: bool) -> JobSchedule:
        schedule = JobSchedule(str(tmp_path / "jobs"), resume)
        schedule.add("source", f"{__name__}:_writes_a_folder", folder=str(tmp_path / "work" / "source"))
        schedule.run(1, 1)
        return schedule

    run(False)
    assert run(True).reused == ["source"]  # its folder is there: taken from the cache
    os.rmdir(tmp_path / "work" / "source")
    again = run(True)
    assert again.reused == [] and (tmp_path / "work" / "source").is_dir()
