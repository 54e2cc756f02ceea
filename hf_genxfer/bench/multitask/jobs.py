"""The jobs of `genxfer bench multitask`: one model per task, a multi-task model per sharing mode and loss weighting,
separate and shared-bottom GANs, and adding a task; each an ordinary recipe given to the training loop.
"""

from __future__ import annotations

import os
import shutil

from ..core import (
    train_recipe,
    training_section,
)
from .config import GANMultitaskBench, Seq2SeqMultitaskBench, multitask_batch


def _seq2seq_parameters(folder: str) -> int:
    from ...training.seq2seq import load_seq2seq_source

    return load_seq2seq_source(folder).num_parameters()


def _gan_parameters(folder: str) -> dict:
    from ...models.gan import GANModel

    model = GANModel.from_pretrained(folder, use_safetensors=True)
    return {"total_parameters": model.num_parameters(), "generator_parameters": model.generator.num_parameters()}


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
        "training": training_section(
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
    metrics, seconds = train_recipe(raw)
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
    batch = multitask_batch(s, len(s.languages))
    learning_rate = s.multitask_learning_rate or s.learning_rate
    raw = _s2s_recipe(s, output_dir, model, _s2s_data(s, tasks=tasks), s.multitask_steps, batch, learning_rate)
    raw["multitask"] = {"mixing": s.mixing, "temperature": s.temperature, "loss_weighting": weighting}
    if weighting == "fixed":
        raw["multitask"]["task_weights"] = dict(s.task_weights)
    metrics, seconds = train_recipe(raw)
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
        "training": training_section(
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


def shared_name(shared_blocks: int | None) -> str:
    return "shared_generator" if shared_blocks is None else f"shared_blocks_{shared_blocks}"


def job_gan_single(g: GANMultitaskBench, work: str, task: str, classes: list[int], seed: int) -> dict:
    """One GAN for one digit group."""
    output_dir = os.path.join(work, "gan", f"single_{task}_seed{seed}")
    shutil.rmtree(output_dir, ignore_errors=True)
    metrics, seconds = train_recipe(
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
    output_dir = os.path.join(work, "gan", f"multi_{shared_name(shared_blocks)}_seed{seed}")
    shutil.rmtree(output_dir, ignore_errors=True)
    model = {**g.model, "task_names": list(g.tasks), "shared_blocks": shared_blocks}
    data = {"tasks": {task: {"classes": list(classes)} for task, classes in g.tasks.items()}}
    raw = _gan_recipe(g, output_dir, model, data, g.multitask_steps, multitask_batch(g, len(g.tasks)), seed)
    raw["multitask"] = {"mixing": g.mixing, "loss_weighting": g.loss_weighting}
    metrics, seconds = train_recipe(raw)
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
    metrics, seconds = train_recipe(raw)
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
