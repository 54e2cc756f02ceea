"""The GPU run, for whenever an accelerator is available: the speed bench and a short few-shot transfer (a digits GAN
source, then full fine-tuning on the held-out classes), in fp32 and in bf16, each through the `genxfer` CLI as a
user runs it; with two or more GPUs also the GAN under DDP (recipes/accelerate/multi_gpu.yaml). Writes OUT/speed.json
(+ PNG) and OUT/gpu_runs.json (each run's metrics and wall seconds).

    python scripts/gpu_check.py [--out gpu_out] [--full] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SOURCE_STEPS, TRANSFER_STEPS = 400, 200


def genxfer(*args: str, launcher: list[str] | None = None) -> float:
    """Runs `genxfer ARGS` (under `launcher`, e.g. accelerate launch ... -m hf_genxfer); returns its wall seconds."""
    command = (launcher or [sys.executable, "-m", "hf_genxfer"]) + list(args)
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return round(time.perf_counter() - started, 1)


def train_pair(out: str, precision: str, compile_: bool, launcher: list[str] | None = None) -> dict:
    """A digits GAN source, then full fine-tuning from it on the held-out classes; the transfer's metrics."""
    tag = f"{precision}{'-compiled' if compile_ else ''}{'-ddp' if launcher else ''}"
    source, target = os.path.join(out, f"source-{tag}"), os.path.join(out, f"transfer-{tag}")
    options = {
        "training.mixed_precision": precision,
        "training.compile": str(compile_).lower(),
        "training.report_to": "none",
        "training.overwrite_output_dir": "true",
    }

    def sets(**extra) -> list[str]:
        return [item for key, value in {**options, **extra}.items() for item in ("--set", f"{key}={value}")]

    seconds = {}
    seconds["source_seconds"] = genxfer(
        "train",
        "recipes/gan_digits_source.yaml",
        *sets(output_dir=source, **{"training.max_steps": SOURCE_STEPS}),
        launcher=launcher,
    )
    seconds["transfer_seconds"] = genxfer(
        "train",
        "recipes/gan_digits_transfer_full.yaml",
        *sets(init_from=source, output_dir=target, **{"training.max_steps": TRANSFER_STEPS}),
        launcher=launcher,
    )
    with open(os.path.join(target, "metrics.json"), encoding="utf-8") as handle:
        return {**seconds, "transfer_metrics": json.load(handle)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_out")
    parser.add_argument("--full", action="store_true", help="the full speed bench (default: --quick)")
    parser.add_argument("--compile", action="store_true", help="also time training.compile")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("No CUDA device: this script is for a machine with a GPU (genxfer bench speed runs anywhere).")
        return 2
    os.makedirs(args.out, exist_ok=True)
    speed = ["bench", "speed", "--out", os.path.join(args.out, "speed.json")]
    speed += [] if args.full else ["--quick"]
    speed += ["--set", "compile=true"] if args.compile else []
    runs = {"device": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count()}
    runs["speed_bench_seconds"] = genxfer(*speed)
    for precision in ("no", "bf16"):
        runs[f"gan_{precision}"] = train_pair(args.out, precision, False)
    if args.compile:
        runs["gan_bf16_compiled"] = train_pair(args.out, "bf16", True)
    if torch.cuda.device_count() > 1:
        launcher = [
            "accelerate",
            "launch",
            "--config_file",
            "recipes/accelerate/multi_gpu.yaml",
            "--num_processes",
            str(torch.cuda.device_count()),
            "-m",
            "hf_genxfer",
        ]
        runs["gan_bf16_ddp"] = train_pair(args.out, "bf16", False, launcher=launcher)
    with open(os.path.join(args.out, "gpu_runs.json"), "w", encoding="utf-8") as handle:
        json.dump(runs, handle, indent=2)
    print(f"Wrote {args.out}/speed.json and {args.out}/gpu_runs.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
