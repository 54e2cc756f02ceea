"""`genxfer bench transfer`: few-shot target quality of every transfer strategy against scratch and the unadapted
source model, at equal steps, batch size and evaluation, for a digits GAN (new classes), a glyphs GAN (new font) and
a number-to-words Seq2Seq model (new language).

Every run is an ordinary recipe given to `hf_genxfer.training.loop.train`. A GAN run is trained in segments (resumed
from its checkpoint) so that it can be scored at each of `eval_steps` on the scenario's held-out target images.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from ..core import JobSchedule, machine_info, without_fields
from . import gan_jobs, seq2seq_jobs
from .config import LORA_SWEEP_FIELDS, QUICK_OVERRIDES, TransferBenchConfig, resolve_config
from .report import evaluate_targets, glyph_checks_by_strategy, print_summary, write_plots


@dataclasses.dataclass(frozen=True)
class Scenario:
    """
    A scenario as jobs: `prepare` (data and the source model), then rounds of units (each round's unit names come
    from the results so far, e.g. the data-efficiency runs of Seq2Seq's best strategy), each unit a job of its own,
    so that the strategies of one scenario run side by side with the others'; `finish` builds the scenario's report.
    """

    prepare: object  # (scenario, section, work) -> prepared dict
    rounds: tuple  # each (section, prepared, done units) -> unit names
    run: object  # (scenario, section, prepared, unit) -> the unit's result
    finish: object  # (scenario, section, prepared, units) -> the scenario's report
    # Fields only the units and finish read: `prepare` is not given them, so that a resumed bench whose changes are
    # all among them keeps the source model (a glyph source is 25 minutes) and reruns the units only.
    unit_fields: tuple = ()


# Per strategy (the source is trained with fields of its own, e.g. source_learning_rate and an EMA of 0.999).
GAN_UNIT_FIELDS = (
    "strategies",
    "strategy_settings",
    "lora_sweep",
    *LORA_SWEEP_FIELDS,
    "lr_scheduler",
    "freeze_discriminator_blocks",
    "l2sp_weight",
    "ewc_weight",
    "cdc_weight",
    "cdc_batch_size",
    "latent_learning_rate",
    "bias_learning_rate",
    "style_frozen_blocks",
    "diffaugment",
    "eval_steps",
    "report_steps",
    "num_samples",
)
SEQ2SEQ_UNIT_FIELDS = (
    "strategies",
    "second_target_strategies",
    "learning_rate",
    "batch_size",
    "lora_r",
    "lora_alpha",
    "lora_learning_rate",
    "l2sp_weight",
    "ewc_weight",
    "eval_every",
    "report_steps",
    "data_efficiency_steps",
)


_GAN_DIGITS = Scenario(
    gan_jobs.prepare_gan_digits,
    (gan_jobs.gan_units,),
    gan_jobs.run_gan_unit,
    gan_jobs.finish_gan_digits,
    GAN_UNIT_FIELDS,
)
# In the order the schedule starts their sources: the longest first.
SCENARIOS = {
    "gan_glyphs": Scenario(
        gan_jobs.prepare_gan_glyphs,
        (gan_jobs.gan_units,),
        gan_jobs.run_gan_unit,
        gan_jobs.finish_gan_glyphs,
        GAN_UNIT_FIELDS,
    ),
    "seq2seq": Scenario(
        seq2seq_jobs.prepare_seq2seq,
        (seq2seq_jobs.seq2seq_strategy_units, seq2seq_jobs.seq2seq_efficiency_units),
        seq2seq_jobs.run_seq2seq_unit,
        seq2seq_jobs.finish_seq2seq,
        SEQ2SEQ_UNIT_FIELDS,
    ),
    "gan_digits": _GAN_DIGITS,
    "gan_digits_reversed": _GAN_DIGITS,
}


def prepare_job(scenario: str, section, work: str) -> dict:
    return SCENARIOS[scenario].prepare(scenario, section, work)


def unit_job(scenario: str, section, prepared: dict, unit: str) -> dict:
    return SCENARIOS[scenario].run(scenario, section, prepared, unit)


def finish_job(scenario: str, section, prepared: dict, units: dict) -> dict:
    return SCENARIOS[scenario].finish(scenario, section, prepared, units)


def plan_scenario(schedule: JobSchedule, scenario: str, section, work: str, rank: int) -> None:
    """
    Adds a scenario's jobs: its `prepare` job first (by `rank`: the longest sources start first; given the section
    without its `unit_fields`), each round of units once the jobs before it are done, then its `finish` job, named
    after the scenario.
    """
    stages = SCENARIOS[scenario]
    job = f"{__name__}:"
    prepare = f"{scenario}/prepare"
    given = without_fields(section, stages.unit_fields)
    schedule.add(prepare, job + "prepare_job", 1000 - rank, scenario=scenario, section=given, work=work)
    units: list[str] = []

    def add_round(index: int):
        def add(schedule: JobSchedule) -> None:
            prepared = schedule.results[prepare]
            done = {unit: schedule.results[f"{scenario}/{unit}"] for unit in units}
            if index == len(stages.rounds):
                schedule.add(
                    scenario,
                    job + "finish_job",
                    2000,
                    scenario=scenario,
                    section=section,
                    prepared=prepared,
                    units=done,
                )
                return
            names = stages.rounds[index](section, prepared, done)
            units.extend(names)
            for unit in names:  # later rounds first: their scenario waits on them; then the longer scenarios
                priority = 500 + 100 * index - rank
                schedule.add(
                    f"{scenario}/{unit}",
                    job + "unit_job",
                    priority,
                    scenario=scenario,
                    section=section,
                    prepared=prepared,
                    unit=unit,
                )
            schedule.when([f"{scenario}/{unit}" for unit in names], add_round(index + 1))

        return add

    schedule.when([prepare], add_round(0))


def run_transfer_bench(config: TransferBenchConfig, out: str, mode: str = "full", resume: bool = False) -> dict:
    """
    Runs every enabled scenario's jobs (side by side in `config.workers` processes), writes `out` and the PNGs. With
    `resume`, jobs finished by an earlier run with the same fields are taken from `<out stem>_runs/jobs/`.
    """
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(out))[0]
    work = os.path.join(out_dir, f"{stem}_runs")
    names = [name for name in SCENARIOS if getattr(config, name).enabled]  # the longest first
    started = time.perf_counter()
    schedule = JobSchedule(os.path.join(work, "jobs"), resume)
    for rank, name in enumerate(names):
        plan_scenario(schedule, name, getattr(config, name), work, rank)
    results = schedule.run(max(1, config.workers), config.threads_per_worker)
    for name in names:  # the time its jobs took, in whichever worker each ran
        own = [job for job in schedule.seconds if job == name or job.startswith(f"{name}/")]
        results[name]["worker_seconds"] = round(sum(schedule.seconds[job] for job in own), 1)
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(config),
        "mode": mode,
        "config": dataclasses.asdict(config),
        **{name: results[name] for name in SCENARIOS if name in results},
        "targets": evaluate_targets(results, config),
        "glyph_checks_by_strategy": glyph_checks_by_strategy(results["gan_glyphs"]) if "gan_glyphs" in results else {},
        "job_seconds": {name: round(seconds, 1) for name, seconds in schedule.seconds.items()},
        "reused_jobs": schedule.reused,  # --resume: jobs taken from an earlier run (their seconds are its)
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    report["plots"] = [os.path.basename(p) for p in write_plots(results, out_dir, stem)]
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return report


__all__ = [
    "QUICK_OVERRIDES",
    "SCENARIOS",
    "Scenario",
    "plan_scenario",
    "TransferBenchConfig",
    "evaluate_targets",
    "print_summary",
    "resolve_config",
    "run_transfer_bench",
    "write_plots",
]
