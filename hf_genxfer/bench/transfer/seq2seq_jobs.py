"""The Seq2Seq scenario of `genxfer bench transfer`: a new language from few pairs (and a second one in another
script), every strategy against scratch and the unadapted source, and the data-efficiency curve.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from ..core import (
    log,
    train_recipe,
    training_section,
)


def _seq2seq_transfer(strategy: str, section) -> tuple[dict, float]:
    """A Seq2Seq strategy name -> (the recipe's `transfer` section, learning rate)."""
    transfer: dict = {"strategy": strategy}
    learning_rate = section.learning_rate
    if strategy == "frozen_encoder":
        transfer["freeze_encoder"] = True
    elif strategy == "lora":
        transfer["lora"] = {"r": section.lora_r, "alpha": section.lora_alpha}
        learning_rate = section.lora_learning_rate
    elif strategy in ("l2sp", "ewc"):
        transfer["regularizer"] = strategy
        transfer["regularizer_weight"] = section.l2sp_weight if strategy == "l2sp" else section.ewc_weight
    return transfer, learning_rate


def _seq2seq_target_run(
    output_dir: str,
    section,
    data_dir: str,
    strategy: str,
    source_dir: str,
    train_size: int,
    report_steps: list[int],
    language: str | None = None,
    extend_vocabulary: bool = False,
) -> dict:
    """One target run of `strategy`, scored on the test pairs at each of `report_steps` (resumed in segments)."""
    shutil.rmtree(output_dir, ignore_errors=True)
    scratch = strategy == "scratch"
    transfer, learning_rate = ({}, section.learning_rate) if scratch else _seq2seq_transfer(strategy, section)
    if extend_vocabulary and not scratch:
        transfer["extend_vocabulary"] = True
        transfer["strategy"] = f"{strategy}+extended_vocabulary"
    data = {
        "dataset": data_dir,
        "train_size": train_size,
        "validation_size": section.validation_size,
        "test_size": section.test_size,
        "max_target_length": 128,
        "tokenizer_languages": [language or section.target_language] if scratch else None,
    }
    at_steps, wall, metrics = {}, 0.0, {}
    for index, steps in enumerate(report_steps):
        raw = {
            "family": "seq2seq",
            "output_dir": output_dir,
            "init_from": "scratch" if scratch else source_dir,
            "seed": section.seed,
            "model": dict(section.model) if scratch else {},
            "data": data,
            "training": training_section(
                steps,
                section.batch_size,
                learning_rate,
                resume=index > 0,
                eval_every=section.eval_every,
                max_grad_norm=1.0,
            ),
            "evaluation": {"num_beams": 1, "max_new_tokens": section.max_new_tokens, "batch_size": 250},
            "transfer": transfer,
        }
        metrics, seconds = train_recipe(raw)
        wall += seconds
        at_steps[str(steps)] = {k: metrics[k] for k in ("exact_match", "chrf", "bleu", "num_examples")}
    with open(os.path.join(output_dir, "training_history.json"), encoding="utf-8") as handle:
        history = json.load(handle)
    curve = [
        {"step": h["step"], "chrf": h["validation_chrf"], "exact_match": h["validation_exact_match"]}
        for h in history
        if "validation_chrf" in h
    ]
    if scratch:
        from ...training.seq2seq import load_seq2seq_source

        model = load_seq2seq_source(output_dir)
        trainable, total = model.num_parameters(only_trainable=True), model.num_parameters()
        report = {"trainable_parameters": trainable, "total_parameters": total}
    else:
        with open(os.path.join(output_dir, "transfer_report.json"), encoding="utf-8") as handle:
            report = json.load(handle)
    added = report.get("added_tokens", [])
    return {
        "at_steps": at_steps,
        "final": at_steps[str(report_steps[-1])],
        "validation_curve": curve,
        "added_tokens": len(added),
        "steps": report_steps[-1],
        "wall_seconds": round(wall, 1),
        "trainable_parameters": report["trainable_parameters"],
        "total_parameters": report["total_parameters"],
        "trainable_fraction": report["trainable_parameters"] / report["total_parameters"],
        "examples": metrics.get("examples", [])[:3],
    }


def run_seq2seq(section, work: str) -> dict:
    """New language: source = `source_language` pairs, target = `target_train_size` pairs of `target_language`."""
    from ...data.text import num2words_splits

    work = os.path.join(work, "seq2seq")
    shutil.rmtree(work, ignore_errors=True)
    source_dir = os.path.join(work, "source")
    source_raw = {
        "family": "seq2seq",
        "output_dir": source_dir,
        "seed": section.seed,
        "model": dict(section.model),
        "data": {
            "dataset": "num2words",
            "language": section.source_language,
            "train_size": section.source_train_size,
            "validation_size": 100,
            "test_size": 200,
            "high": section.high,
            "max_target_length": 128,
            "tokenizer_languages": [section.source_language, section.target_language],
        },
        "training": training_section(
            section.source_steps,
            64,
            section.source_learning_rate,
            resume=False,
            lr_scheduler="linear",
            warmup_steps=min(100, section.source_steps // 10),
            max_grad_norm=1.0,
        ),
        "evaluation": {"num_beams": 1, "max_new_tokens": section.max_new_tokens, "batch_size": 250},
    }
    log(f"seq2seq: pretraining the {section.source_language} source model")
    source_metrics, source_seconds = train_recipe(source_raw)

    # The target pairs as a local dataset folder with fixed validation and test splits, so that every training size
    # of the data-efficiency curve is scored on the same numbers (and smaller training sets are subsets of larger).
    sizes = sorted(set(section.data_efficiency_sizes) | {section.target_train_size})
    splits = num2words_splits(
        section.target_language,
        sizes[-1],
        section.validation_size,
        section.test_size,
        0,
        section.high,
        section.seed + 1,
    )
    data_dir = os.path.join(work, "target_data")
    os.makedirs(data_dir, exist_ok=True)
    for name, part in splits.items():
        part.to_json(os.path.join(data_dir, f"{name}.jsonl"))

    results = {}
    for strategy in section.strategies:
        if strategy == "source":
            results[strategy] = _unadapted_source_scores(source_dir, splits["test"], section)
        else:
            output_dir = os.path.join(work, strategy)
            results[strategy] = _seq2seq_target_run(
                output_dir, section, data_dir, strategy, source_dir, section.target_train_size, section.report_steps
            )
        final = results[strategy]["final"]
        log(
            f"seq2seq {strategy}: chrF {final['chrf']:.1f}, exact match {final['exact_match']:.1%} "
            f"({results[strategy]['wall_seconds']:.0f} s)"
        )

    # Data efficiency: scratch against the best transfer strategy at each training size.
    transfers = [s for s in results if s not in ("source", "scratch")]
    best = max(transfers, key=lambda s: results[s]["final"]["chrf"]) if transfers else None
    efficiency = {"steps": section.data_efficiency_steps, "best_transfer_strategy": best, "points": []}
    for size in section.data_efficiency_sizes if best is not None else []:
        point = {"train_size": size}
        for strategy in ("scratch", best):
            reuse = (
                size == section.target_train_size
                and strategy in results
                and str(section.data_efficiency_steps) in results[strategy]["at_steps"]
            )
            if reuse:
                scores = results[strategy]["at_steps"][str(section.data_efficiency_steps)]
            else:
                run = _seq2seq_target_run(
                    os.path.join(work, f"efficiency_{strategy}_{size}"),
                    section,
                    data_dir,
                    strategy,
                    source_dir,
                    size,
                    [section.data_efficiency_steps],
                )
                scores = run["final"]
            point["scratch" if strategy == "scratch" else "transfer"] = {k: scores[k] for k in ("exact_match", "chrf")}
        efficiency["points"].append(point)
        log(f"seq2seq data efficiency {size} pairs: {point}")
    report = {
        "source_training": {
            "steps": section.source_steps,
            "wall_seconds": round(source_seconds, 1),
            "source_language_test": {k: source_metrics.get(k) for k in ("exact_match", "chrf")},
        },
        "strategies": results,
        "data_efficiency": efficiency,
    }
    if section.second_target_language:
        report["second_target"] = _seq2seq_second_target(section, work, source_dir)
    return report


def _unadapted_source_scores(source_dir: str, test, section) -> dict:
    """The source model as it is, scored on the target's test pairs (the "source" row)."""
    from ...evaluation.text_scores import score_texts
    from ...training.seq2seq import generate_texts

    started = time.perf_counter()
    predictions = generate_texts(source_dir, list(test["source"]), max_new_tokens=section.max_new_tokens)
    scores = score_texts(predictions, list(test["target"]))
    scores = {k: scores[k] for k in ("exact_match", "chrf", "bleu", "num_examples")}
    return {
        "at_steps": {str(s): scores for s in section.report_steps},
        "final": scores,
        "validation_curve": [],
        "steps": 0,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "trainable_parameters": 0,
        "trainable_fraction": 0.0,
        "examples": [
            {"source": s, "reference": r, "prediction": p}
            for s, r, p in list(zip(test["source"], test["target"], predictions))[:3]
        ],
    }


def _seq2seq_second_target(section, work: str, source_dir: str) -> dict:
    """
    The same source adapted to `second_target_language` from `target_train_size` pairs. Its script is not in the
    source tokenizer (trained on the source and first target languages), so transfer strategies extend the
    vocabulary; scratch trains its own tokenizer.
    """
    from ...data.text import num2words_splits

    language = section.second_target_language
    splits = num2words_splits(
        language,
        section.target_train_size,
        section.validation_size,
        section.test_size,
        0,
        section.high,
        section.seed + 2,
    )
    data_dir = os.path.join(work, f"target_data_{language}")
    os.makedirs(data_dir, exist_ok=True)
    for name, part in splits.items():
        part.to_json(os.path.join(data_dir, f"{name}.jsonl"))
    results = {}
    for strategy in section.second_target_strategies:
        if strategy == "source":
            results[strategy] = _unadapted_source_scores(source_dir, splits["test"], section)
        else:
            results[strategy] = _seq2seq_target_run(
                os.path.join(work, f"{language}_{strategy}"),
                section,
                data_dir,
                strategy,
                source_dir,
                section.target_train_size,
                section.report_steps,
                language=language,
                extend_vocabulary=True,
            )
        final = results[strategy]["final"]
        log(
            f"seq2seq {language} {strategy}: chrF {final['chrf']:.1f}, exact match {final['exact_match']:.1%} "
            f"({results[strategy]['wall_seconds']:.0f} s)"
        )
    return {"language": language, "strategies": results}
