"""Side-by-side timing: methods run in interleaved repetitions (the order alternating), medians reported; the
machine's fp32 matmul peak; training FLOPs counted by torch's FlopCounterMode."""

from __future__ import annotations

import statistics
import time

import torch


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleave(methods: dict, repetitions: int) -> dict[str, dict]:
    """
    `methods`: {name: callable running one repetition and returning (seconds, units)}. Runs every method once per
    repetition, in alternating order (A B C, C B A, ...), so drift in the machine's speed hits all alike. Returns per
    method the units/s of each repetition and their median.
    """
    rates: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for repetition in range(repetitions):
        for name in names if repetition % 2 == 0 else names[::-1]:
            seconds, units = methods[name]()
            rates[name].append(units / seconds)
    return {name: {"median": statistics.median(values), "all": values} for name, values in rates.items()}


def timed(function, device) -> float:
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


def matmul_peak_flops(device, size: int = 1024, repeats: int = 20) -> float:
    """This machine's fp32 matmul FLOP/s with the current thread count (best of a few timed runs)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(5):
        best = min(best, timed(lambda: [a @ b for _ in range(repeats)], device))
    return 2 * size**3 * repeats / best


def count_flops(function) -> int:
    """FLOPs of the matmuls and convolutions `function` runs (forward and backward), by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        function()
    return counter.get_total_flops()


def peak_memory_mib(device) -> float:
    """The process's peak memory so far: CUDA's peak allocation on a GPU, else the peak resident set size (VmHWM:
    `getrusage`'s ru_maxrss would carry the parent's peak over `fork` + `exec`)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return _status_mib("VmHWM:")


def resident_mib() -> float:
    """The process's resident set size now (Linux), in MiB."""
    return _status_mib("VmRSS:")


def _status_mib(field: str) -> float:
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # no /proc (macOS): the peak as getrusage reports it (bytes there)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
