"""`genxfer bench multitask`: one multi-task model against one model per task (issue 5, item 7).

- Seq2Seq: number words in several languages (default en, fr, de, es below 1,000,000, 2,000 pairs each), plus a
  low-resource variant in which one language has 50 pairs. One model per task against each sharing mode (hard,
  shared_encoder, shared_structure): per-task exact match and chrF, Δp, total parameters; then each loss weighting
  on the best sharing mode (by Δp on the balanced variant).
- GAN: digit groups as tasks (default 0-4 and 5-9): shared bottom (and a fully shared generator) against separate
  GANs: per-task FID and KID, Δp, parameters.
- Adding a task: a new digit group added to the shared-bottom GAN, with the shared parts frozen and without:
  the new task's FID (against a GAN trained on it alone) and the old tasks' forgetting (FID change).

Every run is an ordinary recipe given to `hf_genxfer.training.loop.train` (see `transfer.py`). Runs are independent
jobs spread over `workers` processes; the loss-weighting runs start once the sharing modes they depend on are scored,
the add-task runs once their multi-task GAN is saved.

Δp is LibMTL's mean relative gain over the single-task models:
Δp = 1/T Σ_t 1/N_t Σ_n (-1)^{l_n} (M_mt,t,n - M_st,t,n) / M_st,t,n x 100, with l_n = 1 for lower-is-better metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context

from ..recipes import RecipeError
from .config import build_bench_config, machine_info
from .transfer import _log, _target, _train, _training_section

SHARING_MODES = ("hard", "shared_encoder", "shared_structure")
WEIGHTINGS = ("equal", "fixed", "uncertainty", "gradnorm", "pcgrad")
LOWER_IS_BETTER = ("fid", "kid")
VARIANTS = ("balanced", "low_resource")

# --------------------------------------------------------------------------------------------------------------------
# Fields, defaults and quick mode


@dataclass
class Seq2SeqMultitaskBench:
    """Languages as tasks: one model per language against one model for all, in each sharing mode."""

    enabled: bool = True
    languages: list[str] = field(default_factory=lambda: ["en", "fr", "de", "es"])
    train_size: int = 2000  # pairs per language
    low_resource_language: str = "es"
    low_resource_train_size: int = 50  # that language's pairs in the low-resource variant
    high: int = 1_000_000  # numbers in [0, high)
    validation_size: int = 100  # fixes the test numbers' offset; not scored during training
    test_size: int = 300  # held-out numbers per language
    # A deep encoder and a shallow decoder (Kasai et al., 2021): the part every task shares is the larger one, so a
    # decoder per task costs about half of four separate models' parameters (0.51x; with 2 + 2 layers: 0.69x).
    model: dict = field(
        default_factory=lambda: {
            "backbone": {
                "d_model": 128,
                "encoder_layers": 3,
                "decoder_layers": 1,
                "encoder_attention_heads": 4,
                "decoder_attention_heads": 4,
                "encoder_ffn_dim": 256,
                "decoder_ffn_dim": 256,
            }
        }
    )
    # 600 steps at batch 24 and learning rate 1e-3 left every model at exact match 0 (chrF 37-56, 2026-11-28);
    # 1,000 steps at batch 32 and 5e-4 reach 69% exact match (chrF 95.6) on English with this backbone (2 + 2 layers:
    # 86%, at twice the time per step).
    steps: int = 1000  # each single-task model
    batch_size: int = 32
    multitask_steps: int = 1000
    multitask_batch_size: int | None = None  # default: batch_size x tasks, so each task sees about as many pairs
    learning_rate: float = 0.0005
    multitask_learning_rate: float | None = None  # default: learning_rate
    warmup_steps: int = 100
    # Round-robin: each language a quarter of every batch. With temperature 2, the 50 Spanish pairs of the
    # low-resource variant got 5% of each batch and Spanish lost 10 chrF to its single model under the shared encoder;
    # round-robin turned that into +1.4, and hard sharing's Spanish from 41 to 63 chrF (2026-11-28, one run each).
    mixing: str = "round_robin"
    temperature: float = 2.0  # for mixing="temperature"
    modes: list[str] = field(default_factory=lambda: list(SHARING_MODES))
    low_resource_modes: list[str] = field(default_factory=lambda: ["hard", "shared_encoder", "shared_structure"])
    # shared_structure: what each task owns; with a one-layer decoder, "top_decoder_layers" would be the whole decoder
    task_specific: str = "lora"
    task_specific_layers: int = 1  # for task_specific="top_decoder_layers"
    lora_rank: int = 8  # for task_specific="lora"
    weightings: list[str] = field(default_factory=lambda: ["uncertainty", "gradnorm", "pcgrad"])  # + equal
    weighting_variant: str = "balanced"  # the variant the weightings run on
    task_weights: dict[str, float] | None = None  # for the "fixed" weighting
    delta_p_metrics: list[str] = field(default_factory=lambda: ["exact_match", "chrf"])
    max_new_tokens: int = 96
    seed: int = 0


@dataclass
class GANMultitaskBench:
    """Digit groups as tasks: separate GANs against one GAN with a shared bottom and a head per task."""

    enabled: bool = True
    tasks: dict[str, list[int]] = field(default_factory=lambda: {"low": [0, 1, 2, 3, 4], "high": [5, 6, 7, 8, 9]})
    model: dict = field(
        default_factory=lambda: {
            "image_size": 8,
            "image_channels": 1,
            "latent_size": 64,
            "base_width": 32,
            "layers_per_block": 2,
            "num_classes": 10,
        }
    )
    steps: int = 800  # each separate GAN
    batch_size: int = 64
    multitask_steps: int = 800
    multitask_batch_size: int | None = None  # default: batch_size x tasks, so each task sees as many images
    learning_rate: float = 0.0002
    # Two time-scale updates (Heusel et al., 2017): at 2e-4 for both, the discriminator's logits stayed near 0 for
    # 800 steps and FID ran from 2.6 to 10 with the seed; at 8e-4 every separate GAN scored 1.3-1.5 (2026-11-28).
    discriminator_learning_rate: float | None = 0.0008
    # The first int is "the shared bottom"; add null for a fully shared generator with a task embedding.
    # 0 shares the latent mapping only (each group owns both blocks); the discriminator's trunk is shared either way.
    shared_blocks: list[int | None] = field(default_factory=lambda: [1, 0])
    mixing: str = "proportional"
    loss_weighting: str = "equal"
    held_out_fraction: float = 0.2
    num_samples: int = 1000  # generated images per task and evaluation
    ema_decay: float = 0.999
    # KID is close to 0, so relative KID changes explode: Δp uses FID unless told otherwise (both are reported).
    delta_p_metrics: list[str] = field(default_factory=lambda: ["fid"])
    add_task: bool = True
    new_task: str = "odd"
    new_task_classes: list[int] = field(default_factory=lambda: [1, 3, 5, 7, 9])
    new_task_init_from: str = "high"  # the existing task whose heads the new task's start from
    add_task_steps: int = 800
    add_task_freeze: list[bool] = field(default_factory=lambda: [True, False])  # shared generator parts frozen?
    # Separate and multi-task GANs are trained once per seed and compared on the mean over seeds: at 800 steps one
    # seed's FID moved 3x between seeds 0 and 1 for the same arm (2026-11-28), more than any gap between arms.
    # Adding a task starts from the first seed's multi-task GAN.
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


@dataclass
class MultitaskBenchConfig:
    seq2seq: Seq2SeqMultitaskBench = field(default_factory=Seq2SeqMultitaskBench)
    gan: GANMultitaskBench = field(default_factory=GANMultitaskBench)
    workers: int = 2  # runs side by side in this many processes
    threads_per_worker: int = 1


# Quick mode: the same protocol with shorter schedules, smaller evaluations and fewer variants (15 minutes, 2 cores).
QUICK_OVERRIDES = [
    "seq2seq.batch_size=16",
    "seq2seq.steps=150",
    "seq2seq.multitask_steps=150",
    "seq2seq.warmup_steps=15",
    "seq2seq.test_size=100",
    "seq2seq.low_resource_modes=[hard,shared_encoder]",
    "seq2seq.weightings=[uncertainty,pcgrad]",
    "gan.steps=250",
    "gan.multitask_steps=250",
    "gan.add_task_steps=250",
    "gan.shared_blocks=[1]",
    "gan.num_samples=500",
    "gan.ema_decay=0.99",
    "gan.seeds=[0]",
]


def resolve_config(quick: bool = False, overrides: list[str] | None = None) -> MultitaskBenchConfig:
    """The bench's fields: the defaults, then the quick-mode overrides, then the user's `--set` ones."""
    return build_bench_config(MultitaskBenchConfig, QUICK_OVERRIDES, quick, overrides, _check)


def _check(config: MultitaskBenchConfig) -> None:
    s, g = config.seq2seq, config.gan
    if not g.seeds or len(set(g.seeds)) != len(g.seeds) or any(seed < 0 for seed in g.seeds):
        raise RecipeError(f"gan.seeds must be one or more distinct non-negative integers, got {g.seeds}.")
    if len(s.languages) < 2 or len(set(s.languages)) != len(s.languages):
        raise RecipeError(f"seq2seq.languages must be two or more distinct languages, got {s.languages}.")
    if s.low_resource_language not in s.languages:
        raise RecipeError(f"seq2seq.low_resource_language {s.low_resource_language!r} must be in seq2seq.languages.")
    for name in ("modes", "low_resource_modes"):
        for mode in getattr(s, name):
            if mode not in SHARING_MODES:
                raise RecipeError(f"seq2seq.{name} has {mode!r}; choose from {', '.join(SHARING_MODES)}.")
    for weighting in s.weightings:
        if weighting not in WEIGHTINGS:
            raise RecipeError(f"seq2seq.weightings has {weighting!r}; choose from {', '.join(WEIGHTINGS)}.")
    if "fixed" in s.weightings and sorted(s.task_weights or {}) != sorted(s.languages):
        raise RecipeError("seq2seq.weightings has fixed: give seq2seq.task_weights one weight per language.")
    if s.weighting_variant not in VARIANTS:
        raise RecipeError(
            f"seq2seq.weighting_variant must be one of {', '.join(VARIANTS)}, got {s.weighting_variant!r}."
        )
    for section, allowed in (("seq2seq", ("exact_match", "chrf", "bleu")), ("gan", ("fid", "kid"))):
        metrics = getattr(config, section).delta_p_metrics
        if not metrics or any(m not in allowed for m in metrics):
            raise RecipeError(f"{section}.delta_p_metrics must be some of {', '.join(allowed)}, got {metrics}.")
    if len(g.tasks) < 2:
        raise RecipeError(f"gan.tasks must name two or more digit groups, got {g.tasks}.")
    if g.new_task in g.tasks or g.new_task_init_from not in g.tasks:
        raise RecipeError(
            f"gan.new_task must be a new name and gan.new_task_init_from one of gan.tasks ({', '.join(g.tasks)})."
        )
    num_classes = g.model.get("num_classes") or 10
    for task, classes in {**g.tasks, g.new_task: g.new_task_classes}.items():
        if not classes or any(not isinstance(c, int) or not 0 <= c < num_classes for c in classes):
            raise RecipeError(f"gan task {task!r} must list digit classes from 0 to {num_classes - 1}, got {classes}.")
    if not g.shared_blocks:
        raise RecipeError("gan.shared_blocks must list at least one value (an int, or null for a shared generator).")
    counts = (
        ("seq2seq.steps", s.steps),
        ("seq2seq.multitask_steps", s.multitask_steps),
        ("seq2seq.batch_size", s.batch_size),
        ("seq2seq.multitask_batch_size", _multitask_batch(s, len(s.languages))),
        ("gan.batch_size", g.batch_size),
        ("gan.multitask_batch_size", _multitask_batch(g, len(g.tasks))),
        ("gan.steps", g.steps),
        ("gan.multitask_steps", g.multitask_steps),
        ("gan.add_task_steps", g.add_task_steps),
        ("workers", config.workers),
        ("threads_per_worker", config.threads_per_worker),
    )
    for name, value in counts:
        if value < 1:
            raise RecipeError(f"{name} must be at least 1, got {value}.")


def _multitask_batch(section, num_tasks: int) -> int:
    return section.multitask_batch_size or section.batch_size * num_tasks


# --------------------------------------------------------------------------------------------------------------------
# Δp and parameter counts


def delta_p(multi: dict, single: dict, metrics: list[str], lower_is_better=LOWER_IS_BETTER) -> float | None:
    """
    LibMTL's Δp in percent: per task, the mean over `metrics` of the relative gain of `multi[task][metric]` over
    `single[task][metric]` (sign flipped for lower-is-better metrics), then the mean over tasks. A metric whose
    single-task value is 0 has no relative gain and is left out; None when nothing is left.
    """
    per_task = []
    for task, baseline in single.items():
        terms = []
        for metric in metrics:
            base, value = baseline[metric], multi[task][metric]
            if base == 0:
                continue
            sign = -1.0 if metric in lower_is_better else 1.0
            terms.append(sign * (value - base) / base)
        if terms:
            per_task.append(sum(terms) / len(terms))
    return None if not per_task else 100.0 * sum(per_task) / len(per_task)


def _delta_p_fields(multi: dict, single: dict, metrics: list[str], reported: tuple[str, ...]) -> dict:
    return {
        "delta_p": _round(delta_p(multi, single, metrics)),
        "delta_p_metrics": list(metrics),
        "delta_p_by_metric": {m: _round(delta_p(multi, single, [m])) for m in reported},
    }


def _round(value, digits: int = 3):
    return None if value is None else round(value, digits)


def _seq2seq_parameters(folder: str) -> int:
    from ..training.seq2seq import load_seq2seq_source
    from ..transfer import count_parameters

    return count_parameters(load_seq2seq_source(folder))[1]


def _gan_parameters(folder: str) -> dict:
    from ..models.gan import GANModel

    model = GANModel.from_pretrained(folder)
    return {
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "generator_parameters": sum(p.numel() for p in model.generator.parameters()),
    }


# --------------------------------------------------------------------------------------------------------------------
# Seq2Seq jobs

S2S_METRICS = ("exact_match", "chrf", "bleu", "num_examples")


def _s2s_data(s: Seq2SeqMultitaskBench, **fields) -> dict:
    return {
        "dataset": "num2words",
        "train_size": s.train_size,
        "validation_size": s.validation_size,
        "test_size": s.test_size,
        "high": s.high,
        "max_target_length": 128,
        **fields,
    }


def _s2s_recipe(
    s: Seq2SeqMultitaskBench, output_dir: str, model: dict, data: dict, steps: int, batch: int, learning_rate: float
) -> dict:
    return {
        "family": "seq2seq",
        "output_dir": output_dir,
        "seed": s.seed,
        "model": model,
        "data": data,
        "training": _training_section(
            steps,
            batch,
            learning_rate,
            resume=False,
            lr_scheduler="linear",
            warmup_steps=min(s.warmup_steps, steps // 10),
            max_grad_norm=1.0,
        ),
        "evaluation": {"num_beams": 1, "max_new_tokens": s.max_new_tokens, "batch_size": 250, "num_examples": 2},
    }


def _s2s_train_size(s: Seq2SeqMultitaskBench, language: str, variant: str) -> int:
    low = variant == "low_resource" and language == s.low_resource_language
    return s.low_resource_train_size if low else s.train_size


def job_s2s_single(s: Seq2SeqMultitaskBench, work: str, language: str, variant: str) -> dict:
    """One model for one language (the variant sets its training size)."""
    output_dir = os.path.join(work, "seq2seq", f"single_{language}_{variant}")
    shutil.rmtree(output_dir, ignore_errors=True)
    train_size = _s2s_train_size(s, language, variant)
    raw = _s2s_recipe(
        s,
        output_dir,
        dict(s.model),
        _s2s_data(s, language=language, train_size=train_size),
        s.steps,
        s.batch_size,
        s.learning_rate,
    )
    metrics, seconds = _train(raw)
    return {
        **{k: metrics[k] for k in S2S_METRICS},
        "train_size": train_size,
        "total_parameters": _seq2seq_parameters(output_dir),
        "steps": s.steps,
        "wall_seconds": round(seconds, 1),
        "examples": metrics.get("examples", [])[:2],
    }


def job_s2s_multi(s: Seq2SeqMultitaskBench, work: str, mode: str, variant: str, weighting: str = "equal") -> dict:
    """One model for every language, in sharing `mode`, with loss `weighting`."""
    output_dir = os.path.join(work, "seq2seq", f"multi_{mode}_{variant}_{weighting}")
    shutil.rmtree(output_dir, ignore_errors=True)
    model = {**s.model, "sharing": mode, "task_names": list(s.languages)}
    if mode == "shared_structure":
        model.update(task_specific=s.task_specific)
        if s.task_specific == "top_decoder_layers":
            model.update(task_specific_layers=s.task_specific_layers)
        elif s.task_specific == "lora":
            model.update(lora_rank=s.lora_rank, lora_alpha=2.0 * s.lora_rank)
    tasks = {}
    for language in s.languages:
        tasks[language] = {"language": language}
        if _s2s_train_size(s, language, variant) != s.train_size:
            tasks[language]["train_size"] = _s2s_train_size(s, language, variant)
    batch = _multitask_batch(s, len(s.languages))
    learning_rate = s.multitask_learning_rate or s.learning_rate
    raw = _s2s_recipe(s, output_dir, model, _s2s_data(s, tasks=tasks), s.multitask_steps, batch, learning_rate)
    raw["multitask"] = {"mixing": s.mixing, "temperature": s.temperature, "loss_weighting": weighting}
    if weighting == "fixed":
        raw["multitask"]["task_weights"] = dict(s.task_weights)
    metrics, seconds = _train(raw)
    return {
        "sharing": mode,
        "loss_weighting": weighting,
        "per_task": {task: {k: scores[k] for k in S2S_METRICS} for task, scores in metrics["per_task"].items()},
        "mean": {k: metrics[k] for k in ("exact_match", "chrf", "bleu")},
        "total_parameters": _seq2seq_parameters(output_dir),
        "steps": s.multitask_steps,
        "wall_seconds": round(seconds, 1),
        "examples": metrics.get("examples", [])[:4],
    }


# --------------------------------------------------------------------------------------------------------------------
# GAN jobs

GAN_METRICS = ("fid", "kid", "kid_std", "num_generated", "num_real")


def _gan_recipe(
    g: GANMultitaskBench, output_dir: str, model: dict, data: dict, steps: int, batch: int, seed: int
) -> dict:
    return {
        "family": "gan",
        "output_dir": output_dir,
        "seed": seed,
        "model": model,
        "data": {"dataset": "digits", "held_out_fraction": g.held_out_fraction, "seed": 0, **data},
        "training": _training_section(
            steps,
            batch,
            g.learning_rate,
            resume=False,
            ema_decay=g.ema_decay,
            sample_every=0,
            discriminator_learning_rate=g.discriminator_learning_rate,
        ),
        "evaluation": {"num_samples": g.num_samples, "feature_network": "digits"},
    }


def _shared_name(shared_blocks: int | None) -> str:
    return "shared_generator" if shared_blocks is None else f"shared_blocks_{shared_blocks}"


def job_gan_single(g: GANMultitaskBench, work: str, task: str, classes: list[int], seed: int) -> dict:
    """One GAN for one digit group."""
    output_dir = os.path.join(work, "gan", f"single_{task}_seed{seed}")
    shutil.rmtree(output_dir, ignore_errors=True)
    metrics, seconds = _train(
        _gan_recipe(g, output_dir, dict(g.model), {"classes": list(classes)}, g.steps, g.batch_size, seed)
    )
    return {
        **{k: metrics[k] for k in GAN_METRICS if k in metrics},
        **_gan_parameters(output_dir),
        "steps": g.steps,
        "wall_seconds": round(seconds, 1),
    }


def job_gan_multi(g: GANMultitaskBench, work: str, shared_blocks: int | None, seed: int) -> dict:
    """One GAN for every digit group: the first `shared_blocks` generator blocks shared (None: all)."""
    output_dir = os.path.join(work, "gan", f"multi_{_shared_name(shared_blocks)}_seed{seed}")
    shutil.rmtree(output_dir, ignore_errors=True)
    model = {**g.model, "task_names": list(g.tasks), "shared_blocks": shared_blocks}
    data = {"tasks": {task: {"classes": list(classes)} for task, classes in g.tasks.items()}}
    raw = _gan_recipe(g, output_dir, model, data, g.multitask_steps, _multitask_batch(g, len(g.tasks)), seed)
    raw["multitask"] = {"mixing": g.mixing, "loss_weighting": g.loss_weighting}
    metrics, seconds = _train(raw)
    return {
        "shared_blocks": shared_blocks,
        "output_dir": output_dir,
        "per_task": {task: {k: v[k] for k in GAN_METRICS if k in v} for task, v in metrics["per_task"].items()},
        "mean": {"fid": metrics["fid"], "kid": metrics["kid"]},
        **_gan_parameters(output_dir),
        "steps": g.multitask_steps,
        "wall_seconds": round(seconds, 1),
    }


# Adding a task with the shared generator frozen: everything but the task heads (and the discriminator).
SHARED_GENERATOR_GLOBS = ["generator.mapping*", "generator.blocks.*", "generator.class_embedding*"]


def job_gan_add_task(g: GANMultitaskBench, work: str, source_dir: str, freeze: bool) -> dict:
    """The multi-task GAN in `source_dir` learns `new_task` from its data alone; the old tasks are re-scored."""
    output_dir = os.path.join(work, "gan", f"add_{g.new_task}_{'frozen' if freeze else 'unfrozen'}")
    shutil.rmtree(output_dir, ignore_errors=True)
    tasks = {
        **{task: {"classes": list(c)} for task, c in g.tasks.items()},
        g.new_task: {"classes": g.new_task_classes},
    }
    model = {"task_names": [*g.tasks, g.new_task]}
    raw = _gan_recipe(g, output_dir, model, {"tasks": tasks}, g.add_task_steps, g.batch_size, g.seeds[0])
    raw["init_from"] = source_dir
    raw["multitask"] = {"train_tasks": [g.new_task], "init_new_tasks_from": {g.new_task: g.new_task_init_from}}
    raw["transfer"] = (
        {"strategy": "add_task_frozen_shared", "freeze": list(SHARED_GENERATOR_GLOBS)}
        if freeze
        else {"strategy": "add_task_full"}
    )
    metrics, seconds = _train(raw)
    per_task = {task: {k: v[k] for k in GAN_METRICS if k in v} for task, v in metrics["per_task"].items()}
    return {
        "freeze_shared": freeze,
        "frozen_globs": list(SHARED_GENERATOR_GLOBS) if freeze else [],
        "new_task": per_task[g.new_task],
        "old_tasks_after": {task: per_task[task] for task in g.tasks},
        "forgetting_fid": metrics.get("forgetting_fid", {}),
        "steps": g.add_task_steps,
        "wall_seconds": round(seconds, 1),
    }


JOBS = {
    "s2s_single": job_s2s_single,
    "s2s_multi": job_s2s_multi,
    "gan_single": job_gan_single,
    "gan_multi": job_gan_multi,
    "gan_add_task": job_gan_add_task,
}


def _run_job(kind: str, kwargs: dict, threads: int) -> tuple[dict, float]:
    """One job in this process (a worker of the pool, or the main process with one worker)."""
    import torch

    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(threads)
    started = time.perf_counter()
    result = JOBS[kind](**kwargs)
    return result, time.perf_counter() - started


# --------------------------------------------------------------------------------------------------------------------
# The schedule: independent jobs, then the ones that depend on their results


def _fingerprint(kind: str, kwargs: dict) -> str:
    """What a job computes: its kind and arguments (bench sections included), as a hash."""
    return hashlib.sha256(repr((kind, sorted(kwargs.items()))).encode()).hexdigest()


class _Schedule:
    """
    Jobs by name, each (kind, kwargs, priority); `triggers` add jobs once all the jobs they wait for are done.

    With `cache_dir`, each finished job's result is written there (atomically, one JSON file per job); with `resume`,
    a job whose file holds the same fingerprint (kind and arguments, its whole bench section included) is taken from
    it instead of being run again, so a crashed or interrupted bench continues where it stopped.
    """

    def __init__(self, cache_dir: str | None = None, resume: bool = False):
        self.pending: dict[str, tuple[str, dict, int]] = {}
        self.triggers: list[tuple[set[str], object]] = []
        self.results: dict[str, dict] = {}
        self.cache_dir, self.resume = cache_dir, resume
        self.reused: list[str] = []

    def _cache_path(self, name: str) -> str:
        return os.path.join(self.cache_dir, name.replace("/", "__") + ".json")

    def add(self, name: str, kind: str, priority: int = 0, **kwargs) -> None:
        if self.cache_dir and self.resume and os.path.isfile(self._cache_path(name)):
            with open(self._cache_path(name), encoding="utf-8") as handle:
                cached = json.load(handle)
            if cached["fingerprint"] == _fingerprint(kind, kwargs):
                self.results[name] = cached["result"]
                self.reused.append(name)
                _log(f"{name}: reused from {self._cache_path(name)}")
                return
        self.pending[name] = (kind, kwargs, priority)

    def when(self, names: list[str], callback) -> None:
        self.triggers.append((set(names), callback))

    def _fire(self) -> None:
        for trigger in list(self.triggers):
            if trigger[0] <= set(self.results):
                self.triggers.remove(trigger)
                trigger[1](self)

    def _next(self) -> str:
        return max(self.pending, key=lambda n: self.pending[n][2])  # dict order breaks ties: the order of adding

    def _done(self, name: str, result: dict, seconds: float, fingerprint: str | None = None) -> None:
        self.results[name] = result
        _log(f"{name} done in {seconds:.0f} s")
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
                kind, kwargs, _ = self.pending.pop(name)
                self._done(name, *_run_job(kind, kwargs, threads), _fingerprint(kind, kwargs))
                self._fire()
            return self.results
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            running = {}
            while self.pending or running:
                while self.pending and len(running) < workers:
                    name = self._next()
                    kind, kwargs, _ = self.pending.pop(name)
                    running[pool.submit(_run_job, kind, kwargs, threads)] = (name, _fingerprint(kind, kwargs))
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name, fingerprint = running.pop(future)
                    self._done(name, *future.result(), fingerprint)
                self._fire()
        return self.results


# --------------------------------------------------------------------------------------------------------------------
# Assembling the results


def _s2s_scores(result: dict) -> dict:
    return {k: result[k] for k in ("exact_match", "chrf", "bleu")}


def _single_task(s: Seq2SeqMultitaskBench, results: dict, variant: str) -> dict:
    """The single-task results of a variant (the low-resource one reuses the other languages' balanced models)."""
    single = {}
    for language in s.languages:
        name = f"s2s/single/{language}/{variant}"
        single[language] = results[name if name in results else f"s2s/single/{language}/balanced"]
    return single


def _with_comparison(s: Seq2SeqMultitaskBench, result: dict, single: dict, variant: str) -> dict:
    """A multi-task result with its parameter ratio, Δp and (low-resource variant) the low-resource gain."""
    result = dict(result)
    scores = {task: _s2s_scores(r) for task, r in single.items()}
    result["parameter_ratio"] = round(
        result["total_parameters"] / sum(r["total_parameters"] for r in single.values()), 4
    )
    result.update(_delta_p_fields(result["per_task"], scores, s.delta_p_metrics, ("exact_match", "chrf")))
    if variant == "low_resource":
        low = s.low_resource_language
        result["low_resource_gain"] = {
            metric: round(result["per_task"][low][metric] - scores[low][metric], 4)
            for metric in ("exact_match", "chrf")
        }
    return result


def _sharing(s: Seq2SeqMultitaskBench, results: dict, variant: str) -> dict:
    modes = s.modes if variant == "balanced" else s.low_resource_modes
    single = _single_task(s, results, variant)
    return {mode: _with_comparison(s, results[f"s2s/multi/{mode}/{variant}/equal"], single, variant) for mode in modes}


def _assemble_seq2seq(s: Seq2SeqMultitaskBench, results: dict, weighting_mode: str | None) -> dict:
    single = {variant: _single_task(s, results, variant) for variant in VARIANTS}
    sharing = {variant: _sharing(s, results, variant) for variant in VARIANTS}
    weighting = None
    if weighting_mode is not None:
        variant = s.weighting_variant
        runs = {"equal": sharing[variant][weighting_mode]}
        for name in s.weightings:
            key = f"s2s/multi/{weighting_mode}/{variant}/{name}"
            if key in results and name != "equal":
                runs[name] = _with_comparison(s, results[key], single[variant], variant)
        weighting = {"sharing": weighting_mode, "variant": variant, "runs": runs}
    return {
        "languages": list(s.languages),
        "low_resource_language": s.low_resource_language,
        "single_task": single,
        "single_task_total_parameters": {v: sum(r["total_parameters"] for r in single[v].values()) for v in VARIANTS},
        "sharing": sharing,
        "best_sharing": weighting_mode,
        "weighting": weighting,
    }


def _best_mode(s: Seq2SeqMultitaskBench, results: dict) -> str | None:
    """The sharing mode with the highest Δp on the weighting variant (the mode whose weightings are compared)."""
    sharing = _sharing(s, results, s.weighting_variant)
    if not sharing:
        return None
    return max(sharing, key=lambda m: float("-inf") if sharing[m]["delta_p"] is None else sharing[m]["delta_p"])


def _seed_mean(runs: list[dict], keys=("fid", "kid")) -> dict:
    """The mean of `keys` over one arm's runs (one per seed), with each seed's values and their spread."""
    summary = {}
    for key in keys:
        values = [run[key] for run in runs]
        summary[key] = statistics.fmean(values)
        summary[f"{key}_per_seed"] = values
        summary[f"{key}_std_over_seeds"] = statistics.pstdev(values)
    return summary


def _assemble_gan(g: GANMultitaskBench, results: dict) -> dict:
    def seed_runs(name: str) -> list[dict]:
        return [results[f"{name}/seed{seed}"] for seed in g.seeds]

    separate = {}
    for task in g.tasks:
        task_runs = seed_runs(f"gan/single/{task}")
        separate[task] = {
            **_seed_mean(task_runs),
            **{k: task_runs[0][k] for k in ("total_parameters", "generator_parameters", "steps", "num_real")},
            "wall_seconds": [run["wall_seconds"] for run in task_runs],
        }
    separate_scores = {task: {k: r[k] for k in ("fid", "kid")} for task, r in separate.items()}
    totals = {
        "total_parameters": sum(r["total_parameters"] for r in separate.values()),
        "generator_parameters": sum(r["generator_parameters"] for r in separate.values()),
    }
    separate_mean_fid = statistics.fmean(r["fid"] for r in separate.values())
    # Per seed: the mean FID over tasks (the separate GANs of seed k against the multi-task GAN of seed k).
    separate_by_seed = [statistics.fmean(separate[t]["fid_per_seed"][k] for t in g.tasks) for k in range(len(g.seeds))]
    multitask = {}
    for shared_blocks in g.shared_blocks:
        name = _shared_name(shared_blocks)
        multi_runs = seed_runs(f"gan/multi/{name}")
        result = {
            k: v for k, v in multi_runs[0].items() if k not in ("output_dir", "per_task", "mean", "wall_seconds")
        }
        result["per_task"] = {task: _seed_mean([run["per_task"][task] for run in multi_runs]) for task in g.tasks}
        result["mean"] = {k: statistics.fmean(r[k] for r in result["per_task"].values()) for k in ("fid", "kid")}
        result["wall_seconds"] = [run["wall_seconds"] for run in multi_runs]
        result["parameter_ratio"] = round(result["total_parameters"] / totals["total_parameters"], 4)
        result["generator_parameter_ratio"] = round(result["generator_parameters"] / totals["generator_parameters"], 4)
        result["mean_fid_ratio"] = round(result["mean"]["fid"] / separate_mean_fid, 4)
        result["mean_fid_ratio_per_seed"] = [
            round(run["mean"]["fid"] / base, 4) for run, base in zip(multi_runs, separate_by_seed)
        ]
        result.update(_delta_p_fields(result["per_task"], separate_scores, g.delta_p_metrics, ("fid", "kid")))
        multitask[name] = result
    report = {
        "tasks": {task: list(classes) for task, classes in g.tasks.items()},
        "seeds": list(g.seeds),
        "separate": separate,
        "separate_total": {**totals, "mean_fid": separate_mean_fid, "mean_fid_per_seed": separate_by_seed},
        "multitask": multitask,
    }
    if g.add_task:
        source = _shared_name(_add_task_source(g))
        seed = g.seeds[0]
        reference = results[f"gan/single/{g.new_task}/seed{seed}"]
        runs = {}
        for freeze in g.add_task_freeze:
            run = dict(results[f"gan/add_task/{'frozen' if freeze else 'unfrozen'}"])
            run["new_task_fid_ratio_to_own_gan"] = round(run["new_task"]["fid"] / reference["fid"], 4)
            runs["frozen_shared" if freeze else "unfrozen"] = run
        report["add_task"] = {
            "new_task": g.new_task,
            "classes": list(g.new_task_classes),
            "from": source,
            "init_new_task_from": g.new_task_init_from,
            "seed": seed,
            "old_tasks_before": results[f"gan/multi/{source}/seed{seed}"]["per_task"],
            "new_task_own_gan": {k: reference[k] for k in ("fid", "kid", "steps")},
            "runs": runs,
        }
    return report


def _add_task_source(g: GANMultitaskBench) -> int | None:
    """The multi-task GAN a task is added to: the first shared-bottom one (an int), else the first."""
    return next((b for b in g.shared_blocks if b is not None), g.shared_blocks[0])


# --------------------------------------------------------------------------------------------------------------------
# Targets, plots and the whole bench


def evaluate_targets(results: dict, config: MultitaskBenchConfig) -> list[dict]:
    """The issue's acceptance targets (full run), each with its measured value, threshold and whether it was met."""
    targets = []
    if "seq2seq" in results:
        s2s = results["seq2seq"]
        low = s2s["low_resource_language"]
        for mode in ("shared_encoder", "shared_structure"):
            balanced = s2s["sharing"]["balanced"].get(mode)
            if balanced is not None:
                value = balanced["delta_p"]
                targets.append(
                    _target(
                        f"seq2seq {mode}: Δp over one model per language (balanced, {'+'.join(balanced['delta_p_metrics'])}), %",
                        value,
                        ">= 0",
                        value is not None and value >= 0,
                    )
                )
                ratio = balanced["parameter_ratio"]
                targets.append(
                    _target(
                        f"seq2seq {mode}: total parameters / the single-task models' total",
                        ratio,
                        "<= 0.6",
                        ratio <= 0.6,
                    )
                )
        for mode, skewed in s2s["sharing"]["low_resource"].items():
            gain = skewed["low_resource_gain"]["chrf"]
            targets.append(
                _target(
                    f"seq2seq {mode}: low-resource {low} chrF minus its single-task model's, points",
                    round(gain, 2),
                    ">= 10",
                    gain >= 10,
                )
            )
    if "gan" in results:
        gan = results["gan"]
        for name, multi in gan["multitask"].items():
            ratio = multi["mean_fid_ratio"]
            targets.append(
                _target(f"gan {name}: mean FID / the separate GANs' mean FID", ratio, "<= 1.10", ratio <= 1.10)
            )
            targets.append(
                _target(
                    f"gan {name}: total parameters (G+D) / the separate GANs' "
                    f"(generator alone: {multi['generator_parameter_ratio']})",
                    multi["parameter_ratio"],
                    "< 1",
                    multi["parameter_ratio"] < 1,
                )
            )
    return targets


def write_plots(results: dict, out_dir: str, stem: str = "multitask") -> list[str]:
    """Per-task bars (Seq2Seq chrF, GAN FID) and Δp per sharing mode / weighting / GAN variant; the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def bars(axis, groups: list[str], series: dict[str, list[float]], ylabel: str, title: str) -> None:
        width = 0.8 / max(1, len(series))
        for k, (label, values) in enumerate(series.items()):
            axis.bar([i + k * width for i in range(len(groups))], values, width, label=label)
        axis.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))], groups)
        axis.set_ylabel(ylabel)
        axis.set_title(title, fontsize=9)
        axis.legend(fontsize=7)

    paths = []
    if "seq2seq" in results:
        s2s = results["seq2seq"]
        languages = s2s["languages"]
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for axis, variant in zip(axes, VARIANTS):
            series = {"one model per language": [s2s["single_task"][variant][t]["chrf"] for t in languages]}
            for mode, result in s2s["sharing"][variant].items():
                series[mode] = [result["per_task"][t]["chrf"] for t in languages]
            title = "balanced" if variant == "balanced" else f"low-resource ({s2s['low_resource_language']})"
            bars(axis, languages, series, "test chrF", f"seq2seq, {title}: chrF per language")
        figure.tight_layout()
        paths.append(os.path.join(out_dir, f"{stem}_seq2seq_per_task.png"))
        figure.savefig(paths[-1], dpi=120)
        plt.close(figure)
    if "gan" in results:
        gan = results["gan"]
        tasks = list(gan["tasks"])
        series = {"separate GANs": [gan["separate"][t]["fid"] for t in tasks]}
        for name, result in gan["multitask"].items():
            series[name] = [result["per_task"][t]["fid"] for t in tasks]
        groups = list(tasks)
        if "add_task" in gan:
            add = gan["add_task"]
            groups.append(f"{add['new_task']} (added)")
            series = {k: [*v, float("nan")] for k, v in series.items()}
            series["separate GANs"][-1] = add["new_task_own_gan"]["fid"]
            for run_name, run in add["runs"].items():
                series[f"+{add['new_task']} {run_name}"] = [
                    *[run["old_tasks_after"][t]["fid"] for t in tasks],
                    run["new_task"]["fid"],
                ]
        figure, axis = plt.subplots(figsize=(8, 4.5))
        bars(axis, groups, series, "FID (lower is better)", "gan: FID per digit group")
        figure.tight_layout()
        paths.append(os.path.join(out_dir, f"{stem}_gan_per_task.png"))
        figure.savefig(paths[-1], dpi=120)
        plt.close(figure)
    panels = []
    if "seq2seq" in results:
        s2s = results["seq2seq"]
        for variant in VARIANTS:
            values = {m: r["delta_p"] for m, r in s2s["sharing"][variant].items()}
            panels.append((f"seq2seq sharing, {variant}", values))
        if s2s["weighting"]:
            values = {w: r["delta_p"] for w, r in s2s["weighting"]["runs"].items()}
            panels.append(
                (f"seq2seq weighting ({s2s['weighting']['sharing']}, {s2s['weighting']['variant']})", values)
            )
    if "gan" in results:
        panels.append(("gan", {n: r["delta_p"] for n, r in results["gan"]["multitask"].items()}))
    if panels:
        figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
        for axis, (title, values) in zip(axes[0], panels):
            names = list(values)
            heights = [0.0 if values[n] is None else values[n] for n in names]
            axis.bar(names, heights, color=["tab:green" if h >= 0 else "tab:red" for h in heights])
            axis.axhline(0, color="black", linewidth=0.8)
            axis.set_title(title, fontsize=9)
            axis.set_ylabel("Δp over single-task models, %")
            axis.tick_params(axis="x", labelrotation=30, labelsize=7)
        figure.tight_layout()
        paths.append(os.path.join(out_dir, f"{stem}_delta_p.png"))
        figure.savefig(paths[-1], dpi=120)
        plt.close(figure)
    return paths


def _plan(config: MultitaskBenchConfig, work: str, resume: bool = False) -> _Schedule:
    """Every job of the bench; longer jobs and those others wait for get the higher priority."""
    schedule = _Schedule(os.path.join(work, "jobs"), resume)
    s, g = config.seq2seq, config.gan
    if s.enabled:
        for mode in s.modes:
            schedule.add(
                f"s2s/multi/{mode}/balanced/equal", "s2s_multi", 50, s=s, work=work, mode=mode, variant="balanced"
            )
        for language in s.languages:
            schedule.add(
                f"s2s/single/{language}/balanced",
                "s2s_single",
                40,
                s=s,
                work=work,
                language=language,
                variant="balanced",
            )
        for mode in s.low_resource_modes:
            schedule.add(
                f"s2s/multi/{mode}/low_resource/equal",
                "s2s_multi",
                30,
                s=s,
                work=work,
                mode=mode,
                variant="low_resource",
            )
        schedule.add(
            f"s2s/single/{s.low_resource_language}/low_resource",
            "s2s_single",
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

            def add_weightings(schedule: _Schedule) -> None:
                best = _best_mode(s, schedule.results)
                _log(f"seq2seq: best sharing mode {best}; its loss weightings next")
                for weighting in weightings:
                    schedule.add(
                        f"s2s/multi/{best}/{variant}/{weighting}",
                        "s2s_multi",
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
                    f"gan/multi/{_shared_name(shared_blocks)}/seed{seed}",
                    "gan_multi",
                    36 if seed == g.seeds[0] else 35,  # the first seed's: the add-a-task runs wait for it
                    g=g,
                    work=work,
                    shared_blocks=shared_blocks,
                    seed=seed,
                )
            for task, classes in g.tasks.items():
                schedule.add(
                    f"gan/single/{task}/seed{seed}",
                    "gan_single",
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
                "gan_single",
                10,
                g=g,
                work=work,
                task=g.new_task,
                classes=g.new_task_classes,
                seed=g.seeds[0],
            )
            source = f"gan/multi/{_shared_name(_add_task_source(g))}/seed{g.seeds[0]}"

            def add_task(schedule: _Schedule) -> None:
                for freeze in g.add_task_freeze:
                    schedule.add(
                        f"gan/add_task/{'frozen' if freeze else 'unfrozen'}",
                        "gan_add_task",
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
    schedule = _plan(config, work, resume)
    raw_results = schedule.run(config.workers, config.threads_per_worker)
    results = {}
    if config.seq2seq.enabled:
        best = _best_mode(config.seq2seq, raw_results)
        results["seq2seq"] = _assemble_seq2seq(config.seq2seq, raw_results, best)
    if config.gan.enabled:
        results["gan"] = _assemble_gan(config.gan, raw_results)
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


def _fmt(value) -> str:
    return "   n/a " if value is None else f"{value:+7.2f}"


def print_summary(report: dict) -> None:
    """The results tables and the targets, as the bench's closing printout."""
    if "seq2seq" in report:
        s2s = report["seq2seq"]
        languages = s2s["languages"]
        print("\nseq2seq: chrF / exact match per language, Δp, parameters")
        for variant in VARIANTS:
            print(f"  {variant}")
            rows = [("single-task", s2s["single_task"][variant], s2s["single_task_total_parameters"][variant], None)]
            rows += [(m, r["per_task"], r["total_parameters"], r) for m, r in s2s["sharing"][variant].items()]
            if s2s["weighting"] and s2s["weighting"]["variant"] == variant:
                rows += [
                    (f"{s2s['weighting']['sharing']}+{w}", r["per_task"], r["total_parameters"], r)
                    for w, r in s2s["weighting"]["runs"].items()
                    if w != "equal"
                ]
            for name, per_task, parameters, result in rows:
                cells = " ".join(
                    f"{t} {per_task[t]['chrf']:5.1f}/{per_task[t]['exact_match']:4.0%}" for t in languages
                )
                extra = (
                    ""
                    if result is None
                    else f" Δp {_fmt(result['delta_p'])} (chrF {_fmt(result['delta_p_by_metric']['chrf'])})"
                    f" x{result['parameter_ratio']:.2f}"
                )
                print(f"    {name:28s} {cells} | {parameters / 1e6:5.2f}M{extra}")
    if "gan" in report:
        gan = report["gan"]
        tasks = list(gan["tasks"])
        print(f"\ngan: FID / KID per digit group (mean over seeds {gan['seeds']}), Δp, parameters (G+D)")
        print(
            f"    {'separate GANs':28s} "
            + " ".join(f"{t} {gan['separate'][t]['fid']:6.2f}/{gan['separate'][t]['kid']:6.3f}" for t in tasks)
            + f" | {gan['separate_total']['total_parameters'] / 1e6:5.2f}M"
        )
        for name, r in gan["multitask"].items():
            print(
                f"    {name:28s} "
                + " ".join(f"{t} {r['per_task'][t]['fid']:6.2f}/{r['per_task'][t]['kid']:6.3f}" for t in tasks)
                + f" | {r['total_parameters'] / 1e6:5.2f}M Δp {_fmt(r['delta_p'])} x{r['parameter_ratio']:.2f}"
                + f" | mean FID / separate {r['mean_fid_ratio']:.2f} (per seed {r['mean_fid_ratio_per_seed']})"
            )
        if "add_task" in gan:
            add = gan["add_task"]
            print(
                f"  adding {add['new_task']} to {add['from']} (its own GAN: FID {add['new_task_own_gan']['fid']:.2f})"
            )
            for name, run in add["runs"].items():
                forgetting = ", ".join(f"{t} {v:+.2f}" for t, v in run["forgetting_fid"].items())
                print(f"    {name:28s} new FID {run['new_task']['fid']:6.2f} | forgetting (FID change) {forgetting}")
    print("\ntargets")
    for target in report["targets"]:
        mark = "met " if target["met"] else "MISS"
        print(f"  {mark} {target['name']}: {target['value']} (target {target['threshold']})")
    print(f"\nwall time {report['wall_seconds']:.0f} s")
