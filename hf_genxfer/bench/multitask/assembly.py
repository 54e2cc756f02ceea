"""Assembling `genxfer bench multitask`'s job results: per-task scores, Δp against the single-task models, the best
sharing mode, seed means, parameters and forgetting.

Δp is LibMTL's mean relative gain over the single-task models:
Δp = 1/T Σ_t 1/N_t Σ_n (-1)^{l_n} (M_mt,t,n - M_st,t,n) / M_st,t,n x 100, with l_n = 1 for lower-is-better metrics.
"""

from __future__ import annotations

import statistics

from .config import LOWER_IS_BETTER, VARIANTS, GANMultitaskBench, Seq2SeqMultitaskBench
from .jobs import shared_name


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
        "delta_p": rounded(delta_p(multi, single, metrics)),
        "delta_p_metrics": list(metrics),
        "delta_p_by_metric": {m: rounded(delta_p(multi, single, [m])) for m in reported},
    }


def rounded(value, digits: int = 3):
    return None if value is None else round(value, digits)


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


def assemble_seq2seq(s: Seq2SeqMultitaskBench, results: dict, weighting_mode: str | None) -> dict:
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


def best_mode(s: Seq2SeqMultitaskBench, results: dict) -> str | None:
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


def assemble_gan(g: GANMultitaskBench, results: dict) -> dict:
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
        name = shared_name(shared_blocks)
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
        source = shared_name(add_task_source(g))
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


def add_task_source(g: GANMultitaskBench) -> int | None:
    """The multi-task GAN a task is added to: the first shared-bottom one (an int), else the first."""
    return next((b for b in g.shared_blocks if b is not None), g.shared_blocks[0])
