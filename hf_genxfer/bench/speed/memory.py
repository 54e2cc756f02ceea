"""Peak memory of one method on one case, in a fresh process (a process's peak resident set only grows, so methods
cannot share one). Every method's process imports the same modules before its baseline is read, so the figure
`training_mib` (peak minus that baseline) is the memory the method's models, optimizer state, data and activations
take; `peak_mib` is the whole process's peak, imports included. On a GPU: CUDA's peak allocation."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys


def measure_memory(kind: str, case, method: str, steps: int, work: str, threads: int) -> dict:
    """Runs `method` of a case for `steps` steps in a child process; returns its memory figures."""
    payload = json.dumps(
        {"kind": kind, "case": dataclasses.asdict(case), "method": method, "steps": steps, "work": work}
    )
    environment = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(threads)}
    completed = subprocess.run(
        [sys.executable, "-m", "hf_genxfer.bench.speed.memory", payload],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"The memory measurement of {kind} {method} failed:\n{completed.stderr[-2000:]}")
    return json.loads(lines[-1])


def _child(payload: dict) -> dict:
    import copy

    import torch
    import transformers  # noqa: F401  (every method's imports, before the baseline)
    from transformers import Seq2SeqTrainer  # noqa: F401

    from ...training import gan as _gan  # noqa: F401
    from ...training import loop as _loop  # noqa: F401
    from ...training import seq2seq as _seq2seq  # noqa: F401
    from .config import GANCase, Seq2SeqCase
    from .gan import build_plain, gan_recipe, ours_steps, start_ours
    from .timing import peak_memory_mib, resident_mib

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    kind, method, steps, work = payload["kind"], payload["method"], payload["steps"], payload["work"]
    baseline = resident_mib()
    output_dir = os.path.join(work, f"memory-{kind}-{method}")
    if kind == "gan":
        case = GANCase(**payload["case"])
        if method == "ours":
            ours_steps(*start_ours(gan_recipe(case, output_dir)), steps)
        else:
            plain = build_plain(case, "cuda" if torch.cuda.is_available() else "cpu")
            for _ in range(steps):
                plain.step()
    else:
        from .seq2seq import PlainSeq2SeqLoop, TrainerRunner, seq2seq_recipe

        case = Seq2SeqCase(**payload["case"])
        session, runner = start_ours(seq2seq_recipe(case, output_dir))
        if method == "ours":
            ours_steps(session, runner, steps)
        else:
            run = session.run
            model, dataset, collator = copy.deepcopy(run.model), run.train_dataset, run.collator
            device = session.accelerator.device
            del session, runner, run
            if method == "plain":
                plain = PlainSeq2SeqLoop(model, dataset, collator, case.batch_size, device)
                for _ in range(steps):
                    plain.step()
            else:
                TrainerRunner(model, dataset, collator, case.batch_size, output_dir + "-trainer", 1).repetition(steps)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = peak_memory_mib(device)
    training = peak if device == "cuda" else peak - baseline
    return {"peak_mib": round(peak, 1), "baseline_mib": round(baseline, 1), "training_mib": round(training, 1)}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
