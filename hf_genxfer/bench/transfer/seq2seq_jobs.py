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


def prepare_seq2seq(scenario: str, section, work: str) -> dict:
    """
    New language, first job: pretrain the source on `source_language` pairs, and write each target's pairs as a local
    dataset folder with fixed validation and test splits (so that every training size of the data-efficiency curve
    is scored on the same numbers, and smaller training sets are subsets of larger ones).
    """
    from ...data.text import num2words_splits

    work = os.path.join(work, scenario)
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
    targets = {"target": (section.target_language, max({*section.data_efficiency_sizes, section.target_train_size}))}
    if section.second_target_language:
        targets["second"] = (section.second_target_language, section.target_train_size)
    data_dirs = {}
    for offset, (key, (language, train_size)) in enumerate(targets.items(), start=1):
        splits = num2words_splits(
            language, train_size, section.validation_size, section.test_size, 0, section.high, section.seed + offset
        )
        data_dirs[key] = os.path.join(work, "target_data" if key == "target" else f"target_data_{language}")
        os.makedirs(data_dirs[key], exist_ok=True)
        for name, part in splits.items():
            part.to_json(os.path.join(data_dirs[key], f"{name}.jsonl"))
    return {
        "work": work,
        "source_dir": source_dir,
        "data_dirs": data_dirs,
        "source_training": {
            "steps": section.source_steps,
            "wall_seconds": round(source_seconds, 1),
            "source_language_test": {k: source_metrics.get(k) for k in ("exact_match", "chrf")},
        },
        "outputs": [source_dir, *data_dirs.values()],
    }


def _best_transfer(done: dict, strategies: list[str]) -> str | None:
    transfers = [s for s in strategies if s not in ("source", "scratch")]
    return max(transfers, key=lambda s: done[s]["final"]["chrf"]) if transfers else None


def _efficiency_reuses(section, done: dict, strategy: str, size: int) -> bool:
    """Whether a data-efficiency point is a run of the strategy table already (same size, scored at its steps)."""
    return (
        size == section.target_train_size
        and strategy in done
        and str(section.data_efficiency_steps) in done[strategy]["at_steps"]
    )


def seq2seq_strategy_units(section, prepared: dict, done: dict) -> list[str]:
    """The jobs once the source is trained: each strategy on the target, then each on the second target."""
    units = list(section.strategies)
    if section.second_target_language:
        units += [f"{section.second_target_language}/{s}" for s in section.second_target_strategies]
    return units


def seq2seq_efficiency_units(section, prepared: dict, done: dict) -> list[str]:
    """Then the data-efficiency runs: scratch against the best transfer strategy at each training size."""
    best = _best_transfer(done, section.strategies)
    if best is None:
        return []
    return [
        f"efficiency/{strategy}/{size}"
        for size in section.data_efficiency_sizes
        for strategy in ("scratch", best)
        if not _efficiency_reuses(section, done, strategy, size)
    ]


def _test_pairs(data_dir: str) -> dict:
    with open(os.path.join(data_dir, "test.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {"source": [row["source"] for row in rows], "target": [row["target"] for row in rows]}


def run_seq2seq_unit(scenario: str, section, prepared: dict, unit: str) -> dict:
    """One job: a strategy on the target ("full"), on the second target ("ru/full") or a data-efficiency point."""
    work, source_dir = prepared["work"], prepared["source_dir"]
    if unit.startswith("efficiency/"):
        _, strategy, size = unit.split("/")
        run = _seq2seq_target_run(
            os.path.join(work, f"efficiency_{strategy}_{size}"),
            section,
            prepared["data_dirs"]["target"],
            strategy,
            source_dir,
            int(size),
            [section.data_efficiency_steps],
        )
        log(f"seq2seq data efficiency {size} pairs, {strategy}: chrF {run['final']['chrf']:.1f}")
        return run
    language, _, strategy = unit.rpartition("/")  # "ru/full": the second target's
    second = bool(language)
    language = language or section.target_language
    data_dir = prepared["data_dirs"]["second" if second else "target"]
    if strategy == "source":
        result = _unadapted_source_scores(source_dir, _test_pairs(data_dir), section)
    else:
        result = _seq2seq_target_run(
            os.path.join(work, f"{language}_{strategy}" if second else strategy),
            section,
            data_dir,
            strategy,
            source_dir,
            section.target_train_size,
            section.report_steps,
            language=language,
            extend_vocabulary=second,
        )
    final = result["final"]
    log(
        f"seq2seq {unit}: chrF {final['chrf']:.1f}, exact match {final['exact_match']:.1%} "
        f"({result['wall_seconds']:.0f} s)"
    )
    return result


def finish_seq2seq(scenario: str, section, prepared: dict, units: dict) -> dict:
    """New language, last job: the strategy tables of both targets and the data-efficiency curve."""
    results = {strategy: units[strategy] for strategy in section.strategies}
    best = _best_transfer(results, section.strategies)
    efficiency = {"steps": section.data_efficiency_steps, "best_transfer_strategy": best, "points": []}
    for size in section.data_efficiency_sizes if best is not None else []:
        point = {"train_size": size}
        for strategy in ("scratch", best):
            if _efficiency_reuses(section, results, strategy, size):
                scores = results[strategy]["at_steps"][str(section.data_efficiency_steps)]
            else:
                scores = units[f"efficiency/{strategy}/{size}"]["final"]
            point["scratch" if strategy == "scratch" else "transfer"] = {k: scores[k] for k in ("exact_match", "chrf")}
        efficiency["points"].append(point)
    report = {"source_training": prepared["source_training"], "strategies": results, "data_efficiency": efficiency}
    if section.second_target_language:
        language = section.second_target_language
        report["second_target"] = {
            "language": language,
            "strategies": {s: units[f"{language}/{s}"] for s in section.second_target_strategies},
        }
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
