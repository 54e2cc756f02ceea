"""`genxfer bench transfer`: few-shot target quality of every transfer strategy against scratch and the unadapted
source model, at equal steps, batch size and evaluation, for a digits GAN (new classes), a glyphs GAN (new font) and
a number-to-words Seq2Seq model (new language).

Every run is an ordinary recipe given to `hf_genxfer.training.loop.train`. A GAN run is trained in segments (resumed
from its checkpoint) so that it can be scored at each of `eval_steps` on the scenario's held-out target images.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from .config import TransferBenchConfig, machine_info

# --------------------------------------------------------------------------------------------------------------------
# Running one recipe


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _train(raw: dict) -> tuple[dict, float]:
    """Trains a raw recipe in this process (accelerate's singletons reset first); returns (metrics, wall seconds)."""
    from accelerate.state import AcceleratorState, GradientState

    from ..recipes import validate_recipe
    from ..training.loop import train

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    started = time.perf_counter()
    metrics = train(validate_recipe(raw))
    return metrics, time.perf_counter() - started


def _training_section(max_steps: int, batch_size: int, learning_rate: float, resume: bool, **extra) -> dict:
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


def _first_step_reaching(curve: list[dict], key: str, threshold: float, lower_is_better: bool = True) -> int | None:
    for point in curve:
        value = point.get(key)
        if value is not None and (value <= threshold if lower_is_better else value >= threshold):
            return point["step"]
    return None


# --------------------------------------------------------------------------------------------------------------------
# GAN scenarios


def _gan_transfer(strategy: str, section) -> dict:
    """A GAN strategy name (e.g. "lora+diffaugment") -> the recipe's `transfer` section."""
    base, _, extra = strategy.partition("+")
    transfer: dict = {"strategy": strategy}
    if base != "freezed" and section.fresh_discriminator:
        transfer["fresh_discriminator"] = True
    if base == "freezed":
        transfer["freeze_discriminator_blocks"] = section.freeze_discriminator_blocks
    elif base == "lora":
        transfer["lora"] = {"r": section.lora_r, "alpha": section.lora_alpha, "target": "generator"}
    elif base in ("l2sp", "ewc"):
        transfer["regularizer"] = base
        transfer["regularizer_weight"] = section.l2sp_weight if base == "l2sp" else section.ewc_weight
    if extra == "diffaugment":
        transfer["diffaugment"] = section.diffaugment
    return transfer


def _gan_recipe(output_dir: str, section, data: dict, max_steps: int, resume: bool, init_from="scratch", **kw) -> dict:
    return {
        "family": "gan",
        "output_dir": output_dir,
        "init_from": init_from,
        "seed": section.seed,
        "model": dict(section.model) if init_from == "scratch" else {},
        "data": data,
        "training": _training_section(
            max_steps,
            section.batch_size,
            section.learning_rate,
            resume,
            ema_decay=kw.pop("ema_decay", section.ema_decay),
            sample_every=0,
        ),
        # The loop's own final evaluation is kept small: the bench scores every segment itself, the same way for all.
        "evaluation": {"num_samples": 64, "feature_network": kw.pop("feature_network")},
        "transfer": kw.pop("transfer", {}),
    }


def _generator_trainable(raw: dict) -> dict:
    """Trainable parameters of the whole GAN and of the generator alone, as the run's strategy leaves them."""
    from ..recipes import validate_recipe
    from ..training.gan import build_gan
    from ..training.strategy import apply_adapters, apply_freezing

    recipe = validate_recipe(raw)
    model = build_gan(recipe)[0]
    apply_freezing(model, recipe.transfer)
    apply_adapters(model, recipe.transfer, default_target="generator")

    def count(module):
        parameters = list(module.parameters())
        return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)

    trainable, total = count(model)
    generator_trainable, generator_total = count(model.generator)
    return {
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_fraction": trainable / total,
        "generator_trainable_parameters": generator_trainable,
        "generator_total_parameters": generator_total,
        "generator_trainable_fraction": generator_trainable / generator_total,
    }


def _run_gan_strategies(name: str, section, work: str, source_dir: str, target_data: dict, score, feature_network):
    """Every strategy of a GAN scenario: scored by `score(generator)` at each of `section.eval_steps`."""
    from ..models.gan import GANModel

    results = {}
    for strategy in section.strategies:
        if strategy == "source":
            started = time.perf_counter()
            scores = score(GANModel.from_pretrained(source_dir).generator)
            results[strategy] = {
                "curve": [{"step": 0, **scores}],
                "at_steps": {str(s): scores for s in section.report_steps},
                "final": scores,
                "steps": 0,
                "wall_seconds": round(time.perf_counter() - started, 1),
                "trainable_parameters": 0,
                "trainable_fraction": 0.0,
                "generator_trainable_fraction": 0.0,
            }
            _log(f"{name} {strategy}: FID {scores['fid']:.2f}")
            continue
        output_dir = os.path.join(work, strategy.replace("+", "_"))
        shutil.rmtree(output_dir, ignore_errors=True)
        init_from = "scratch" if strategy == "scratch" else source_dir
        transfer = {} if strategy == "scratch" else _gan_transfer(strategy, section)
        rates = {}
        if strategy.startswith("lora") and section.lora_learning_rate is not None:
            rates = {"learning_rate": section.lora_learning_rate, "discriminator_learning_rate": section.learning_rate}
        curve, wall, train_seconds = [], 0.0, 0.0
        for index, steps in enumerate(section.eval_steps):
            raw = _gan_recipe(
                output_dir,
                section,
                target_data,
                steps,
                resume=index > 0,
                init_from=init_from,
                transfer=transfer,
                feature_network=feature_network,
            )
            raw["training"].update(rates)
            metrics, seconds = _train(raw)
            started = time.perf_counter()
            scores = score(GANModel.from_pretrained(output_dir).generator)
            wall += seconds + time.perf_counter() - started
            train_seconds = metrics.get("train_seconds", 0.0) + train_seconds
            curve.append({"step": steps, **scores, "wall_seconds": round(wall, 1)})
        parameters = _generator_trainable(raw)
        results[strategy] = {
            "curve": curve,
            "at_steps": {str(p["step"]): p for p in curve if p["step"] in section.report_steps},
            "final": curve[-1],
            "steps": section.eval_steps[-1],
            "wall_seconds": round(wall, 1),
            "train_seconds": round(train_seconds, 1),
            **parameters,
        }
        _log(
            f"{name} {strategy}: FID "
            + ", ".join(f"{p['step']}: {p['fid']:.2f}" for p in curve)
            + f" ({wall:.0f} s, G trainable {parameters['generator_trainable_fraction']:.1%})"
        )
    _add_steps_to_scratch(results, "fid")
    return results


def _add_steps_to_scratch(results: dict, key: str) -> None:
    """For each strategy: the first evaluated step whose FID is at most scratch's final FID (None: never)."""
    if "scratch" not in results:
        return
    threshold = results["scratch"]["final"][key]
    for strategy, result in results.items():
        if strategy == "source":
            result["steps_to_scratch_final_fid"] = 0 if result["final"][key] <= threshold else None
            continue
        result["steps_to_scratch_final_fid"] = _first_step_reaching(result["curve"], key, threshold)


def _score_fields(scores: dict) -> dict:
    keep = ("fid", "kid", "kid_std", "num_generated", "num_real", "unseen_accuracy", "seen_accuracy")
    return {k: scores[k] for k in keep if k in scores}


def run_gan_digits(section, work: str) -> dict:
    """New classes: source = `source_classes` (all their images), target = `target_classes` x `target_shots`."""
    from ..data.images import load_image_splits
    from ..evaluation.image_scores import score_generator
    from ..models.gan import GANConfig
    from ..recipes import ImageDataRecipe

    work = os.path.join(work, "gan_digits")
    source_dir = os.path.join(work, "source")
    shutil.rmtree(source_dir, ignore_errors=True)
    source_data = {"dataset": "digits", "classes": section.source_classes, "held_out_fraction": 0.2, "seed": 0}
    _log("gan_digits: pretraining the source GAN")
    source_metrics, source_seconds = _train(
        _gan_recipe(
            source_dir,
            section,
            source_data,
            section.source_steps,
            resume=False,
            feature_network="digits",
            ema_decay=0.999,
        )
    )
    target_data = {
        "dataset": "digits",
        "classes": section.target_classes,
        "shots_per_class": section.target_shots,
        "held_out_fraction": section.held_out_fraction,
        "seed": 0,
    }
    held_out_images, held_out_labels = load_image_splits(ImageDataRecipe(**target_data), GANConfig(**section.model))[
        "held_out"
    ]

    def score(generator):
        scores = score_generator(
            generator, held_out_images, held_out_labels, section.num_samples, "digits", seed=section.seed
        )
        return _score_fields(scores)

    strategies = _run_gan_strategies(
        "gan_digits", section, work, source_dir, target_data, score, feature_network="digits"
    )
    return {
        "source_training": {
            "steps": section.source_steps,
            "wall_seconds": round(source_seconds, 1),
            "fid_on_source_classes": source_metrics.get("fid"),
        },
        "num_target_train_images": len(section.target_classes) * section.target_shots,
        "num_held_out_images": len(held_out_images),
        "strategies": strategies,
    }


def _write_imagefolder(dataset, folder: str) -> None:
    """Glyph images as an imagefolder (one subfolder per class, named by the zero-padded label, so sorted = label)."""
    for index, (image, label) in enumerate(zip(dataset["image"], dataset["label"])):
        class_folder = os.path.join(folder, f"{label:02d}")
        os.makedirs(class_folder, exist_ok=True)
        image.save(os.path.join(class_folder, f"{index:06d}.png"))


def run_gan_glyphs(section, work: str) -> dict:
    """New font: pretrain on `source_fonts`, adapt from `target_characters` of `target_font`, score all 62."""
    import torch

    from ..data.glyphs import GLYPH_CHARACTERS, available_glyph_fonts, glyphs_dataset
    from ..data.images import images_to_tensor
    from ..evaluation.accuracy import classifier_accuracy
    from ..evaluation.image_scores import generate_images, score_generator

    fonts = available_glyph_fonts()
    if section.target_font not in fonts:
        raise ValueError(f"gan_glyphs.target_font {section.target_font!r} is not one of {', '.join(fonts)}.")
    source_fonts = section.source_fonts or [f for f in fonts if f != section.target_font]
    if section.target_font in source_fonts:
        raise ValueError("gan_glyphs.source_fonts must not contain the target font.")
    unknown = [c for c in section.target_characters if c not in GLYPH_CHARACTERS]
    if unknown:
        raise ValueError(f"gan_glyphs.target_characters has {unknown[0]!r}, which is not one of the 62 glyphs.")
    size = section.model["image_size"]

    # The corpora as imagefolders: the recipe's data section reads them like any user's images.
    work = os.path.join(work, "gan_glyphs")
    shutil.rmtree(work, ignore_errors=True)
    source_folder, target_folder = os.path.join(work, "data_source"), os.path.join(work, "data_target")
    _write_imagefolder(glyphs_dataset(source_fonts, size, section.source_samples_per_glyph, seed=0), source_folder)
    # Two jittered renderings per glyph so that the stratified held-out split of the run keeps one of each.
    _write_imagefolder(
        glyphs_dataset([section.target_font], size, max(2, 2 * section.target_shots), seed=0), target_folder
    )
    evaluation = glyphs_dataset([section.target_font], size, section.eval_samples_per_glyph, seed=1)
    eval_images = images_to_tensor(evaluation["image"], size, 1)
    eval_labels = torch.as_tensor(evaluation["label"])
    seen = [GLYPH_CHARACTERS.index(c) for c in section.target_characters]
    unseen = [label for label in range(len(GLYPH_CHARACTERS)) if label not in seen]

    def score(generator):
        scores = _score_fields(
            score_generator(generator, eval_images, eval_labels, section.num_samples, "glyphs", seed=section.seed)
        )
        for key, labels in (("unseen_accuracy", unseen), ("seen_accuracy", seen)):
            labels = torch.as_tensor(labels).repeat(section.eval_samples_per_glyph)
            images = generate_images(generator, len(labels), labels, seed=section.seed + 1)
            scores[key] = classifier_accuracy(images, labels, "glyphs")["accuracy"]
        return scores

    source_dir = os.path.join(work, "source")
    # The source run's own held-out split needs every character at least once.
    held_out = min(0.5, max(0.1, 1.5 / (len(source_fonts) * section.source_samples_per_glyph)))
    source_data = {"dataset": source_folder, "held_out_fraction": held_out, "seed": 0}
    _log(f"gan_glyphs: pretraining the source GAN on {len(source_fonts)} fonts")
    _, source_seconds = _train(
        _gan_recipe(
            source_dir,
            section,
            source_data,
            section.source_steps,
            resume=False,
            feature_network="glyphs",
            ema_decay=0.999,
        )
    )
    target_data = {
        "dataset": target_folder,
        "classes": seen,
        "shots_per_class": section.target_shots,
        "held_out_fraction": 0.5,
        "seed": 0,
    }
    strategies = _run_gan_strategies(
        "gan_glyphs", section, work, source_dir, target_data, score, feature_network="glyphs"
    )
    return {
        "source_training": {"steps": section.source_steps, "wall_seconds": round(source_seconds, 1)},
        "source_fonts": source_fonts,
        "target_font": section.target_font,
        "target_characters": section.target_characters,
        "num_target_train_images": len(seen) * section.target_shots,
        "num_held_out_images": len(eval_images),
        "num_unseen_characters": len(unseen),
        "strategies": strategies,
    }


# --------------------------------------------------------------------------------------------------------------------
# Seq2Seq scenario


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
            "training": _training_section(
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
        metrics, seconds = _train(raw)
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
        from ..training.seq2seq import load_seq2seq_source
        from ..transfer import count_parameters

        trainable, total = count_parameters(load_seq2seq_source(output_dir))
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
    from ..data.text import num2words_splits

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
        "training": _training_section(
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
    _log(f"seq2seq: pretraining the {section.source_language} source model")
    source_metrics, source_seconds = _train(source_raw)

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
        _log(
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
        _log(f"seq2seq data efficiency {size} pairs: {point}")
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
    from ..evaluation.text_scores import score_texts
    from ..training.seq2seq import generate_texts

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
    from ..data.text import num2words_splits

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
        _log(
            f"seq2seq {language} {strategy}: chrF {final['chrf']:.1f}, exact match {final['exact_match']:.1%} "
            f"({results[strategy]['wall_seconds']:.0f} s)"
        )
    return {"language": language, "strategies": results}


# --------------------------------------------------------------------------------------------------------------------
# Targets, plots and the whole bench


def _transfer_names(strategies: dict) -> list[str]:
    return [s for s in strategies if s not in ("source", "scratch")]


def _target(name: str, value, threshold, met: bool | None, note: str = "") -> dict:
    entry = {"name": name, "value": value, "threshold": threshold, "met": met}
    if note:
        entry["note"] = note
    return entry


def evaluate_targets(results: dict, config: TransferBenchConfig) -> list[dict]:
    """The issue's acceptance targets, each with its measured value, threshold and whether it was met."""
    targets = []
    for scenario, ratio_300 in (("gan_digits", 0.7), ("gan_glyphs", 0.5)):
        if scenario not in results:
            continue
        strategies, section = results[scenario]["strategies"], getattr(config, scenario)
        transfers = _transfer_names(strategies)
        if not transfers:
            continue
        best = min(transfers, key=lambda s: strategies[s]["final"]["fid"])
        best_fid = strategies[best]["final"]["fid"]
        baselines = [strategies[s]["final"]["fid"] for s in ("source", "scratch") if s in strategies]
        if baselines:
            targets.append(
                _target(
                    f"{scenario}: best transfer ({best}) final FID / best of source and scratch",
                    round(best_fid / min(baselines), 3),
                    "< 1",
                    best_fid < min(baselines),
                )
            )
        early = str(section.report_steps[0])
        if "scratch" in strategies:
            best_early = min(transfers, key=lambda s: strategies[s]["at_steps"][early]["fid"])
            ratio = strategies[best_early]["at_steps"][early]["fid"] / strategies["scratch"]["at_steps"][early]["fid"]
            targets.append(
                _target(
                    f"{scenario}: best transfer ({best_early}) FID at {early} steps / scratch's",
                    round(ratio, 3),
                    f"<= {ratio_300}",
                    ratio <= ratio_300,
                )
            )
        if "lora" in strategies and "full" in strategies:
            ratio = strategies["lora"]["final"]["fid"] / strategies["full"]["final"]["fid"]
            targets.append(
                _target(f"{scenario}: LoRA final FID / full fine-tuning's", round(ratio, 3), "<= 1.3", ratio <= 1.3)
            )
            fraction = strategies["lora"]["generator_trainable_fraction"]
            targets.append(
                _target(
                    f"{scenario}: LoRA trainable fraction of the generator (the adapted network; "
                    f"whole GAN: {strategies['lora']['trainable_fraction']:.1%}, the discriminator trains fully)",
                    round(fraction, 4),
                    "<= 0.10",
                    fraction <= 0.10,
                )
            )
        if scenario == "gan_glyphs" and "source" in strategies:
            source_accuracy = strategies["source"]["final"]["unseen_accuracy"]
            gap = (source_accuracy - strategies[best]["final"]["unseen_accuracy"]) * 100
            targets.append(
                _target(
                    f"gan_glyphs: unseen-character accuracy, source model minus best transfer ({best}), points",
                    round(gap, 1),
                    "<= 10",
                    gap <= 10,
                )
            )
    if "seq2seq" in results:
        strategies = results["seq2seq"]["strategies"]
        transfers = _transfer_names(strategies)
        if transfers:
            best = max(transfers, key=lambda s: strategies[s]["final"]["chrf"])
            best_scores = strategies[best]["final"]
            baselines = [strategies[s]["final"]["chrf"] for s in ("source", "scratch") if s in strategies]
            if baselines:
                targets.append(
                    _target(
                        f"seq2seq: best transfer ({best}) chrF minus best of source and scratch",
                        round(best_scores["chrf"] - max(baselines), 2),
                        "> 0",
                        best_scores["chrf"] > max(baselines),
                    )
                )
            if "scratch" in strategies:
                scratch = strategies["scratch"]["final"]
                gain = best_scores["chrf"] - scratch["chrf"]
                targets.append(
                    _target(
                        f"seq2seq: best transfer ({best}) chrF minus scratch's", round(gain, 2), ">= 10", gain >= 10
                    )
                )
                ratio = best_scores["exact_match"] / scratch["exact_match"] if scratch["exact_match"] else None
                targets.append(
                    _target(
                        f"seq2seq: best transfer ({best}) exact match / scratch's",
                        None if ratio is None else round(ratio, 2),
                        ">= 2",
                        (ratio is None and best_scores["exact_match"] > 0) or (ratio is not None and ratio >= 2),
                        note="scratch's exact match is 0" if ratio is None else "",
                    )
                )
            if "lora" in strategies and "full" in strategies:
                gap = strategies["full"]["final"]["chrf"] - strategies["lora"]["final"]["chrf"]
                targets.append(_target("seq2seq: full fine-tuning chrF minus LoRA's", round(gap, 2), "<= 5", gap <= 5))
                fraction = strategies["lora"]["trainable_fraction"]
                targets.append(
                    _target("seq2seq: LoRA trainable fraction", round(fraction, 4), "<= 0.10", fraction <= 0.10)
                )
    second = results.get("seq2seq", {}).get("second_target")
    if second and "scratch" in second["strategies"]:
        strategies = second["strategies"]
        transfers = _transfer_names(strategies)
        if transfers:
            best = max(transfers, key=lambda s: strategies[s]["final"]["chrf"])
            gain = strategies[best]["final"]["chrf"] - strategies["scratch"]["final"]["chrf"]
            targets.append(
                _target(
                    f"seq2seq {second['language']}: best transfer ({best}, extended vocabulary) chrF minus scratch's",
                    round(gain, 2),
                    "> 0",
                    gain > 0,
                )
            )
    return targets


def write_plots(results: dict, out_dir: str, stem: str = "transfer") -> list[str]:
    """Quality against steps per scenario, and the Seq2Seq data-efficiency curve; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for scenario in ("gan_digits", "gan_glyphs"):
        if scenario not in results:
            continue
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for strategy, result in results[scenario]["strategies"].items():
            if strategy == "source":
                axis.axhline(result["final"]["fid"], color="grey", linestyle=":", label="source (unadapted)")
                continue
            steps = [p["step"] for p in result["curve"]]
            style = "--" if strategy == "scratch" else "-"
            axis.plot(steps, [p["fid"] for p in result["curve"]], style, marker="o", markersize=3, label=strategy)
        axis.set_xlabel("target steps")
        axis.set_ylabel("FID (lower is better)")
        axis.set_yscale("log")
        axis.set_title(f"{scenario}: FID on held-out target images")
        axis.legend(fontsize=7)
        figure.tight_layout()
        path = os.path.join(out_dir, f"{stem}_{scenario}.png")
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    chrf_figures = []
    if "seq2seq" in results:
        chrf_figures.append(("seq2seq", results["seq2seq"]["strategies"], "target numbers"))
        second = results["seq2seq"].get("second_target")
        if second:
            chrf_figures.append(
                (f"seq2seq_{second['language']}", second["strategies"], f"{second['language']} numbers")
            )
    for name, strategies, what in chrf_figures:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for strategy, result in strategies.items():
            if strategy == "source":
                axis.axhline(result["final"]["chrf"], color="grey", linestyle=":", label="source (unadapted)")
                continue
            curve = result["validation_curve"]
            if curve:
                style = "--" if strategy == "scratch" else "-"
                axis.plot(
                    [p["step"] for p in curve],
                    [p["chrf"] for p in curve],
                    style,
                    marker="o",
                    markersize=3,
                    label=strategy,
                )
        axis.set_xlabel("target steps")
        axis.set_ylabel("validation chrF (higher is better)")
        axis.set_title(f"{name}: chrF on held-out {what}")
        axis.legend(fontsize=7)
        figure.tight_layout()
        path = os.path.join(out_dir, f"{stem}_{name}.png")
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    if "seq2seq" in results:
        efficiency = results["seq2seq"]["data_efficiency"]
        if efficiency["points"]:
            figure, axis = plt.subplots(figsize=(6, 4))
            sizes = [p["train_size"] for p in efficiency["points"]]
            for key, label in (("scratch", "scratch"), ("transfer", efficiency["best_transfer_strategy"])):
                axis.plot(sizes, [p[key]["chrf"] for p in efficiency["points"]], marker="o", label=label)
            axis.set_xscale("log")
            axis.set_xlabel("target training pairs")
            axis.set_ylabel("test chrF")
            axis.set_title(f"seq2seq data efficiency ({efficiency['steps']} steps)")
            axis.legend()
            figure.tight_layout()
            path = os.path.join(out_dir, f"{stem}_data_efficiency.png")
            figure.savefig(path, dpi=120)
            plt.close(figure)
            paths.append(path)
    return paths


SCENARIOS = {"seq2seq": run_seq2seq, "gan_digits": run_gan_digits, "gan_glyphs": run_gan_glyphs}


def _run_scenario(name: str, config: TransferBenchConfig, work: str) -> tuple[str, dict, float]:
    """One scenario in this process (a worker of the pool, or the main process with one worker)."""
    import torch

    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(config.threads_per_worker)
    started = time.perf_counter()
    result = SCENARIOS[name](getattr(config, name), work)
    seconds = time.perf_counter() - started
    result["wall_seconds"] = round(seconds, 1)
    _log(f"{name} finished in {seconds:.0f} s")
    return name, result, seconds


def run_transfer_bench(config: TransferBenchConfig, out: str, mode: str = "full") -> dict:
    """Runs every enabled scenario (side by side in `config.workers` processes), writes `out` and the PNGs."""
    import dataclasses

    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(out))[0]
    work = os.path.join(out_dir, f"{stem}_runs")
    names = [name for name in SCENARIOS if getattr(config, name).enabled]  # the longest first
    started = time.perf_counter()
    results = {}
    if config.workers > 1 and len(names) > 1:
        with ProcessPoolExecutor(min(config.workers, len(names)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_run_scenario, name, config, work) for name in names]
            for future in futures:
                name, result, _ = future.result()
                results[name] = result
    else:
        for name in names:
            results[name] = _run_scenario(name, config, work)[1]
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(config),
        "mode": mode,
        "config": dataclasses.asdict(config),
        **{name: results[name] for name in SCENARIOS if name in results},
        "targets": evaluate_targets(results, config),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    report["plots"] = [os.path.basename(p) for p in write_plots(results, out_dir, stem)]
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return report


def print_summary(report: dict) -> None:
    """The results table and the targets, as the bench's closing printout."""
    sections = [(name, report[name]) for name in ("gan_digits", "gan_glyphs", "seq2seq") if name in report]
    if "seq2seq" in report and report["seq2seq"].get("second_target"):
        second = report["seq2seq"]["second_target"]
        sections.append((f"seq2seq {second['language']}", second))
    for scenario, section in sections:
        wall = section.get("wall_seconds")
        print(f"\n{scenario}" + (f" ({wall:.0f} s)" if wall is not None else ""))
        for strategy, result in section["strategies"].items():
            cells = []
            for step, scores in result["at_steps"].items():
                if scenario.startswith("seq2seq"):
                    cells.append(f"@{step}: chrF {scores['chrf']:5.1f} EM {scores['exact_match']:6.1%}")
                else:
                    cell = f"@{step}: FID {scores['fid']:7.2f} KID {scores['kid']:7.3f}"
                    if "unseen_accuracy" in scores:
                        cell += f" acc {scores['unseen_accuracy']:.0%}"
                    cells.append(cell)
            fraction = result.get("generator_trainable_fraction", result["trainable_fraction"])
            print(f"  {strategy:22s} {' | '.join(cells)} | trainable {fraction:6.1%} | {result['wall_seconds']:.0f} s")
    print("\ntargets")
    for target in report["targets"]:
        mark = "met " if target["met"] else "MISS"
        print(f"  {mark} {target['name']}: {target['value']} (target {target['threshold']})")
    print(f"\nwall time {report['wall_seconds']:.0f} s")
