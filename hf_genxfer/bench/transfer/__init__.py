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

from ..core import JobSchedule, log, machine_info
from .config import QUICK_OVERRIDES, TransferBenchConfig, resolve_config
from .gan_jobs import run_gan_digits, run_gan_digits_reversed, run_gan_glyphs
from .report import evaluate_targets, glyph_checks_by_strategy, print_summary, write_plots
from .seq2seq_jobs import run_seq2seq

# In the order the schedule starts them: the longest first.
SCENARIOS = {
    "seq2seq": run_seq2seq,
    "gan_glyphs": run_gan_glyphs,
    "gan_digits": run_gan_digits,
    "gan_digits_reversed": run_gan_digits_reversed,
}


def scenario_job(scenario: str, section, work: str) -> dict:
    """One scenario, as a job of the schedule (in a worker process, or in this one with one worker)."""
    started = time.perf_counter()
    result = SCENARIOS[scenario](section, work)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    log(f"{scenario} finished in {result['wall_seconds']:.0f} s")
    return result


def run_transfer_bench(config: TransferBenchConfig, out: str, mode: str = "full", resume: bool = False) -> dict:
    """
    Runs every enabled scenario (side by side in `config.workers` processes), writes `out` and the PNGs. With
    `resume`, scenarios finished by an earlier run with the same fields are taken from `<out stem>_runs/jobs/`.
    """
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(out))[0]
    work = os.path.join(out_dir, f"{stem}_runs")
    names = [name for name in SCENARIOS if getattr(config, name).enabled]  # the longest first
    started = time.perf_counter()
    schedule = JobSchedule(os.path.join(work, "jobs"), resume)
    for rank, name in enumerate(names):
        schedule.add(
            name,
            f"{__name__}:scenario_job",
            len(names) - rank,
            scenario=name,
            section=getattr(config, name),
            work=work,
        )
    results = schedule.run(max(1, min(config.workers, len(names))), config.threads_per_worker)
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(config),
        "mode": mode,
        "config": dataclasses.asdict(config),
        **{name: results[name] for name in SCENARIOS if name in results},
        "targets": evaluate_targets(results, config),
        "glyph_checks_by_strategy": glyph_checks_by_strategy(results["gan_glyphs"]) if "gan_glyphs" in results else {},
        "reused_jobs": schedule.reused,  # --resume: scenarios taken from an earlier run (their seconds are its)
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    report["plots"] = [os.path.basename(p) for p in write_plots(results, out_dir, stem)]
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return report


__all__ = [
    "QUICK_OVERRIDES",
    "SCENARIOS",
    "scenario_job",
    "TransferBenchConfig",
    "evaluate_targets",
    "print_summary",
    "resolve_config",
    "run_transfer_bench",
    "write_plots",
]
