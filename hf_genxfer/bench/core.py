"""What every `genxfer bench` protocol shares: training one recipe, recipe sections, targets, the bench's fields
(defaults, quick mode, `--set`), machine info, and the job schedule that spreads independent jobs over worker
processes and, with `--resume`, reuses the jobs an interrupted run already finished."""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context

from ..errors import RecipeError
from ..recipes import apply_overrides, build_section


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def train_recipe(raw: dict) -> tuple[dict, float]:
    """Trains a raw recipe in this process (accelerate's singletons reset first); returns (metrics, wall seconds)."""
    from accelerate.state import AcceleratorState, GradientState

    from ..recipes import validate_recipe
    from ..training.loop import train

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    started = time.perf_counter()
    metrics = train(validate_recipe(raw))
    return metrics, time.perf_counter() - started


def training_section(max_steps: int, batch_size: int, learning_rate: float, resume: bool, **extra) -> dict:
    return {
        "max_steps": max_steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "checkpoint_every": max_steps,
        "checkpoints_total_limit": 1,
        "resume_from_checkpoint": "latest" if resume else None,
        "log_every": min(50, max_steps),
        "report_to": "none",
        **extra,
    }


def first_step_reaching(curve: list[dict], key: str, threshold: float, lower_is_better: bool = True) -> int | None:
    for point in curve:
        value = point.get(key)
        if value is not None and (value <= threshold if lower_is_better else value >= threshold):
            return point["step"]
    return None


def target_row(name: str, value, threshold, met: bool | None, note: str = "") -> dict:
    entry = {"name": name, "value": value, "threshold": threshold, "met": met}
    if note:
        entry["note"] = note
    return entry


def build_bench_config(config_class, quick_overrides: list[str], quick: bool, overrides: list[str] | None, check):
    """A bench's fields: the defaults, then the quick-mode overrides, then the user's `--set` ones, then `check`."""
    raw = dataclasses.asdict(config_class())
    try:
        raw = apply_overrides(raw, (quick_overrides if quick else []) + list(overrides or []))
        config = build_section(config_class, raw, "")
    except RecipeError as error:
        raise RecipeError(str(error).replace("recipe key", "bench field")) from None
    check(config)
    return config


def machine_info(config) -> dict:
    """Where a bench ran, for its JSON (results are only comparable within one run on one machine)."""
    import os
    import platform
    from importlib.metadata import version

    import torch

    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),  # BLAS and conv kernels differ across CPUs: so do the last digits of every result
        "workers": config.workers,
        "torch_threads_per_worker": config.threads_per_worker,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        **{name: version(name) for name in ("transformers", "peft", "accelerate", "diffusers", "datasets")},
    }


def _cpu_model() -> str:
    """The CPU's model name as the kernel reports it (Linux), else what `platform` knows."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class NotForThisJob:
    """
    A field a job must not read, in place of its value (`without_fields`): its repr is the same whatever the value, so
    the job's fingerprint does not change with it, and any use of it (a test, arithmetic, iteration, formatting, JSON)
    raises, so that a job that reads it after all fails at once instead of being reused with a stale value.
    """

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}: not for this job>"

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"{self.name} is not given to this job; remove it from the fields the job is not given.")

    __bool__ = __iter__ = __len__ = __format__ = __str__ = __eq__ = __lt__ = __gt__ = __float__ = __int__ = _refuse
    __getitem__ = __contains__ = __add__ = __mul__ = __truediv__ = __index__ = _refuse
    __hash__ = None


def without_fields(section, names) -> object:
    """
    A bench section with `names` (those it has) replaced by `NotForThisJob`: given to a job that does not read them
    (a scenario's `prepare`, which trains the source), a resumed bench reuses that job when only they changed.
    """
    hidden = {name: NotForThisJob(name) for name in names if hasattr(section, name)}
    return dataclasses.replace(section, **hidden) if hidden else section


def job_fingerprint(job: str, kwargs: dict) -> str:
    """What a job computes: its kind and arguments (bench sections included), as a hash."""
    return hashlib.sha256(repr((job, sorted(kwargs.items()))).encode()).hexdigest()


def run_job(job: str, kwargs: dict, threads: int) -> tuple[dict, float]:
    """One job (`"module:function"`) in this process: a worker of the pool, or the main process with one worker."""
    import importlib

    import torch

    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(threads)
    module, _, function = job.partition(":")
    started = time.perf_counter()
    result = getattr(importlib.import_module(module), function)(**kwargs)
    return result, time.perf_counter() - started


def _die_with_parent(parent: int) -> None:
    """
    A pool worker's initializer: on Linux the kernel sends the worker SIGTERM when the bench process dies, however it
    dies (`kill`, even `kill -9`), so no orphaned worker goes on training for an hour; elsewhere nothing is done
    (there, Ctrl-C still reaches the whole process group).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the bench died before the request was made
        os._exit(1)


class JobSchedule:
    """
    Jobs by name, each (job, kwargs, priority): `job` names the function as "module:function"; `triggers` add jobs once all the jobs they wait for are done.

    With `cache_dir`, each finished job's result is written there (atomically, one JSON file per job); with `resume`,
    a job whose file holds the same fingerprint (kind and arguments, its whole bench section included) is taken from
    it instead of being run again, so a crashed or interrupted bench continues where it stopped. A result may list
    the files and folders later jobs read in `"outputs"`: it is reused only while they all still exist.
    `seconds` holds each job's seconds (a reused job's: the earlier run's).
    """

    def __init__(self, cache_dir: str | None = None, resume: bool = False):
        self.pending: dict[str, tuple[str, dict, int]] = {}
        self.triggers: list[tuple[set[str], object]] = []
        self.results: dict[str, dict] = {}
        self.cache_dir, self.resume = cache_dir, resume
        self.reused: list[str] = []
        self.seconds: dict[str, float] = {}

    def _cache_path(self, name: str) -> str:
        return os.path.join(self.cache_dir, name.replace("/", "__") + ".json")

    def add(self, name: str, job: str, priority: int = 0, **kwargs) -> None:
        if self.cache_dir and self.resume and os.path.isfile(self._cache_path(name)):
            with open(self._cache_path(name), encoding="utf-8") as handle:
                cached = json.load(handle)
            missing = [p for p in cached["result"].get("outputs", []) if not os.path.exists(p)]
            if cached["fingerprint"] == job_fingerprint(job, kwargs) and not missing:
                self.results[name] = cached["result"]
                self.seconds[name] = cached.get("seconds", 0.0)
                self.reused.append(name)
                log(f"{name}: reused from {self._cache_path(name)}")
                return
        self.pending[name] = (job, kwargs, priority)

    def when(self, names: list[str], callback) -> None:
        self.triggers.append((set(names), callback))

    def _fire(self) -> None:
        fired = True
        while fired:  # a trigger may add another whose jobs are all done already (or that waits for none)
            fired = False
            for trigger in list(self.triggers):
                if trigger[0] <= set(self.results):
                    self.triggers.remove(trigger)
                    trigger[1](self)
                    fired = True

    def _next(self) -> str:
        return max(self.pending, key=lambda n: self.pending[n][2])  # dict order breaks ties: the order of adding

    def _done(self, name: str, result: dict, seconds: float, fingerprint: str | None = None) -> None:
        self.results[name], self.seconds[name] = result, seconds
        log(f"{name} done in {seconds:.0f} s")
        if self.cache_dir and fingerprint:
            os.makedirs(self.cache_dir, exist_ok=True)
            path = self._cache_path(name)
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                json.dump({"fingerprint": fingerprint, "seconds": seconds, "result": result}, handle, indent=1)
            os.replace(path + ".tmp", path)

    def run(self, workers: int, threads: int) -> dict:
        self._fire()
        if workers == 1:
            while self.pending:
                name = self._next()
                job, kwargs, _ = self.pending.pop(name)
                self._done(name, *run_job(job, kwargs, threads), job_fingerprint(job, kwargs))
                self._fire()
            return self.results
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            running = {}
            while self.pending or running:
                while self.pending and len(running) < workers:
                    name = self._next()
                    job, kwargs, _ = self.pending.pop(name)
                    running[pool.submit(run_job, job, kwargs, threads)] = (name, job_fingerprint(job, kwargs))
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name, fingerprint = running.pop(future)
                    self._done(name, *future.result(), fingerprint)
                self._fire()
        return self.results
