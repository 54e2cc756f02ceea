"""`genxfer bench multitask`: one multi-task model against one model per task (issue 5, item 7).

- Seq2Seq: number words in several languages (default en, fr, de, es below 1,000,000, 2,000 pairs each), plus a
  low-resource variant in which one language has 50 pairs. One model per task against each sharing mode (hard,
  shared_encoder, shared_structure): per-task exact match and chrF, Δp, total parameters; then each loss weighting
  on the best sharing mode (by Δp on the balanced variant).
- GAN: digit groups as tasks (default 0-4 and 5-9): shared bottom (and a fully shared generator) against separate
  GANs: per-task FID and KID, Δp, parameters.
- Adding a task: a new digit group added to the shared-bottom GAN, with the shared parts frozen and without:
  the new task's FID (against a GAN trained on it alone) and the old tasks' forgetting (FID change).

Every run is an ordinary recipe given to `hf_genxfer.training.loop.train` (see `hf_genxfer.bench.core`). Runs are independent
jobs spread over `workers` processes; the loss-weighting runs start once the sharing modes they depend on are scored,
the add-task runs once their multi-task GAN is saved.

Δp is LibMTL's mean relative gain over the single-task models:
Δp = 1/T Σ_t 1/N_t Σ_n (-1)^{l_n} (M_mt,t,n - M_st,t,n) / M_st,t,n x 100, with l_n = 1 for lower-is-better metrics.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from ..core import JobSchedule, log, machine_info
from .assembly import add_task_source, assemble_gan, assemble_seq2seq, best_mode, delta_p
from .config import QUICK_OVERRIDES, MultitaskBenchConfig, resolve_config
from .jobs import shared_name
from .report import evaluate_targets, print_summary, write_plots

JOB = "hf_genxfer.bench.multitask.jobs:"


def plan_jobs(config: MultitaskBenchConfig, work: str, resume: bool = False) -> JobSchedule:
    """Every job of the bench; longer jobs and those others wait for get the higher priority."""
    schedule = JobSchedule(os.path.join(work, "jobs"), resume)
    s, g = config.seq2seq, config.gan
    if s.enabled:
        for mode in s.modes:
            schedule.add(
                f"s2s/multi/{mode}/balanced/equal",
                JOB + "job_s2s_multi",
                50,
                s=s,
                work=work,
                mode=mode,
                variant="balanced",
            )
        for language in s.languages:
            schedule.add(
                f"s2s/single/{language}/balanced",
                JOB + "job_s2s_single",
                40,
                s=s,
                work=work,
                language=language,
                variant="balanced",
            )
        for mode in s.low_resource_modes:
            schedule.add(
                f"s2s/multi/{mode}/low_resource/equal",
                JOB + "job_s2s_multi",
                30,
                s=s,
                work=work,
                mode=mode,
                variant="low_resource",
            )
        schedule.add(
            f"s2s/single/{s.low_resource_language}/low_resource",
            JOB + "job_s2s_single",
            20,
            s=s,
            work=work,
            language=s.low_resource_language,
            variant="low_resource",
        )
        variant = s.weighting_variant
        modes = s.modes if variant == "balanced" else s.low_resource_modes
        weightings = [w for w in s.weightings if w != "equal"]
        if modes and weightings:
            waits = [f"s2s/multi/{m}/{variant}/equal" for m in modes]
            waits += [f"s2s/single/{language}/balanced" for language in s.languages]
            waits += [f"s2s/single/{s.low_resource_language}/low_resource"] if variant == "low_resource" else []

            def add_weightings(schedule: JobSchedule) -> None:
                best = best_mode(s, schedule.results)
                log(f"seq2seq: best sharing mode {best}; its loss weightings next")
                for weighting in weightings:
                    schedule.add(
                        f"s2s/multi/{best}/{variant}/{weighting}",
                        JOB + "job_s2s_multi",
                        60,
                        s=s,
                        work=work,
                        mode=best,
                        variant=variant,
                        weighting=weighting,
                    )

            schedule.when(waits, add_weightings)
    if g.enabled:
        for seed in g.seeds:
            for shared_blocks in g.shared_blocks:
                schedule.add(
                    f"gan/multi/{shared_name(shared_blocks)}/seed{seed}",
                    JOB + "job_gan_multi",
                    36 if seed == g.seeds[0] else 35,  # the first seed's: the add-a-task runs wait for it
                    g=g,
                    work=work,
                    shared_blocks=shared_blocks,
                    seed=seed,
                )
            for task, classes in g.tasks.items():
                schedule.add(
                    f"gan/single/{task}/seed{seed}",
                    JOB + "job_gan_single",
                    25,
                    g=g,
                    work=work,
                    task=task,
                    classes=classes,
                    seed=seed,
                )
        if g.add_task:
            schedule.add(
                f"gan/single/{g.new_task}/seed{g.seeds[0]}",
                JOB + "job_gan_single",
                10,
                g=g,
                work=work,
                task=g.new_task,
                classes=g.new_task_classes,
                seed=g.seeds[0],
            )
            source = f"gan/multi/{shared_name(add_task_source(g))}/seed{g.seeds[0]}"

            def add_task(schedule: JobSchedule) -> None:
                for freeze in g.add_task_freeze:
                    schedule.add(
                        f"gan/add_task/{'frozen' if freeze else 'unfrozen'}",
                        JOB + "job_gan_add_task",
                        15,
                        g=g,
                        work=work,
                        source_dir=schedule.results[source]["output_dir"],
                        freeze=freeze,
                    )

            schedule.when([source], add_task)
    return schedule


def run_multitask_bench(config: MultitaskBenchConfig, out: str, mode: str = "full", resume: bool = False) -> dict:
    """
    Runs every enabled scenario's jobs over `config.workers` processes; writes `out` and the PNGs beside it. With
    `resume`, jobs finished by an earlier run with the same fields are taken from `<out stem>_runs/jobs/`.
    """

    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(out))[0]
    work = os.path.join(out_dir, f"{stem}_runs")
    started = time.perf_counter()
    schedule = plan_jobs(config, work, resume)
    raw_results = schedule.run(config.workers, config.threads_per_worker)
    results = {}
    if config.seq2seq.enabled:
        best = best_mode(config.seq2seq, raw_results)
        results["seq2seq"] = assemble_seq2seq(config.seq2seq, raw_results, best)
    if config.gan.enabled:
        results["gan"] = assemble_gan(config.gan, raw_results)
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(config),
        "mode": mode,
        "config": dataclasses.asdict(config),
        **results,
        "targets": evaluate_targets(results, config),
        "job_seconds": {name: r["wall_seconds"] for name, r in raw_results.items()},
        "reused_jobs": schedule.reused,  # --resume: jobs taken from an earlier run (their seconds are its)
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    report["plots"] = [os.path.basename(p) for p in write_plots(results, out_dir, stem)]
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return report


__all__ = [
    "MultitaskBenchConfig",
    "QUICK_OVERRIDES",
    "delta_p",
    "evaluate_targets",
    "plan_jobs",
    "print_summary",
    "resolve_config",
    "run_multitask_bench",
    "write_plots",
]
