"""`genxfer bench speed`: our training loop, generation and pipeline against what a user would run instead, side by
side in one process (interleaved repetitions, medians), with peak memory (each method in a fresh process) and the
achieved share of this machine's fp32 matmul FLOP/s.

- GAN (the demo's 8x8 digits model, a 32x32 glyph model, a 64x64 RGB model): images/s of our loop, with default
  options and with the case's speed options, against a plain PyTorch loop (same modules, losses, R1 schedule, Adam;
  no accelerate, no EMA); GANPipeline against calling the generator.
- Seq2Seq (the demo's small BART and a few-million-parameter one): non-padding target tokens/s of our loop against
  transformers' Seq2SeqTrainer and a plain loop, with the padding share; generation tokens/s (greedy and 4-beam,
  batch 1 and 32) of our wrapper against the bare backbone, and multi-task routing against a single-task model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

from ..core import log, machine_info
from .config import GAN_CASES, QUICK_OVERRIDES, SEQ2SEQ_CASES, SpeedBenchConfig, resolve_config
from .report import evaluate_targets, print_summary, write_plots


def run_speed_bench(config: SpeedBenchConfig, out: str, mode: str = "full", resume: bool = False) -> dict:
    """Measures every enabled case in this process (never in parallel: the cases would slow each other down), writes
    `out` and the PNG. `resume` is accepted for the CLI's sake: a speed run is always measured afresh."""
    import datasets
    import torch

    from .gan import measure_gan_case
    from .memory import measure_memory
    from .seq2seq import measure_seq2seq_case
    from .timing import matmul_peak_flops

    datasets.disable_progress_bars()
    threads = config.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(out))[0]
    work = os.path.join(out_dir, f"{stem}_runs")
    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = matmul_peak_flops(device)
    log(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s with {threads} threads")
    report: dict = {"gan": {}, "seq2seq": {}}
    for name in GAN_CASES:
        case = getattr(config, name)
        if not case.enabled:
            continue
        log(f"{name}: timing")
        result = measure_gan_case(name, case, config, work, compile_too=config.compile)
        result["flops_share_of_matmul_peak"] = {
            variant: round(result["training_flops_per_image"] * rate / peak, 4)
            for variant, rate in result["images_per_second"].items()
        }
        if config.measure_memory:
            log(f"{name}: memory")
            figures = {
                m: measure_memory("gan", case, m, config.memory_steps, work, threads) for m in ("ours", "plain")
            }
            figures["training_mib_ratio"] = round(
                figures["ours"]["training_mib"] / figures["plain"]["training_mib"], 3
            )
            figures["peak_mib_ratio"] = round(figures["ours"]["peak_mib"] / figures["plain"]["peak_mib"], 3)
            result["memory"] = figures
        report["gan"][name] = result
    for name in SEQ2SEQ_CASES:
        case = getattr(config, name)
        if not case.enabled:
            continue
        log(f"{name}: timing")
        result = measure_seq2seq_case(name, case, config, work, compile_too=config.compile)
        result["flops_share_of_matmul_peak"] = {
            variant: round(result["training_flops_per_target_token"] * rate / peak, 4)
            for variant, rate in result["target_tokens_per_second"].items()
        }
        if config.measure_memory:
            log(f"{name}: memory")
            methods = ("ours", "plain", "trainer")
            figures = {m: measure_memory("seq2seq", case, m, config.memory_steps, work, threads) for m in methods}
            figures["training_mib_ratio_vs_trainer"] = round(
                figures["ours"]["training_mib"] / figures["trainer"]["training_mib"], 3
            )
            result["memory"] = figures
        report["seq2seq"][name] = result
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**machine_info(_Workers(threads)), "device": device},
        "mode": mode,
        "config": dataclasses.asdict(config),
        "matmul_peak_gflops": round(peak / 1e9, 2),
        **report,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    shutil.rmtree(work, ignore_errors=True)  # scratch: the recipes each method's session wrote, nothing to keep
    report["targets"] = evaluate_targets(report)
    report["plots"] = [os.path.basename(p) for p in write_plots(report, out_dir, stem)]
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return report


@dataclasses.dataclass
class _Workers:
    """What `machine_info` reads of a bench config: one worker process using every thread."""

    threads_per_worker: int
    workers: int = 1


__all__ = [
    "QUICK_OVERRIDES",
    "SpeedBenchConfig",
    "evaluate_targets",
    "print_summary",
    "resolve_config",
    "run_speed_bench",
]
