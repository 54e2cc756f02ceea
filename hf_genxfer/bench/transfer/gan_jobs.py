"""The GAN scenarios of `genxfer bench transfer`: new digit classes and a new font, each strategy trained in segments
(resumed from its checkpoint) and scored at each of `eval_steps` on the scenario's held-out target images.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time

from ..core import (
    first_step_reaching,
    log,
    train_recipe,
    training_section,
)


def _gan_transfer(strategy: str, section) -> dict:
    """A GAN strategy name (e.g. "lora+diffaugment", "style+cdc") -> the recipe's `transfer` section."""
    base, *extras = strategy.split("+")
    transfer: dict = {"strategy": strategy}
    if base != "freezed" and section.fresh_discriminator:
        transfer["fresh_discriminator"] = True
    if base == "freezed":
        transfer["freeze_discriminator_blocks"] = section.freeze_discriminator_blocks
    elif base == "lora":
        transfer["lora"] = {"r": section.lora_r, "alpha": section.lora_alpha, "target": "generator"}
        if section.lora_modules_to_save:
            transfer["lora"]["modules_to_save"] = list(section.lora_modules_to_save)
        if section.lora_use_dora:
            transfer["lora"]["use_dora"] = True
        if section.loraplus_lr_ratio is not None:
            transfer["lora"]["loraplus_lr_ratio"] = section.loraplus_lr_ratio
    elif base in ("l2sp", "ewc"):
        transfer["regularizer"] = base
        transfer["regularizer_weight"] = section.l2sp_weight if base == "l2sp" else section.ewc_weight
    elif base == "style":
        transfer["freeze_generator_blocks"] = section.style_frozen_blocks
    elif base == "latent" and "bias" in extras:  # the latent's affine and the modulations' biases train
        transfer["freeze_generator_blocks"] = 0  # the embeddings and mappings
        transfer["freeze"] = [
            "generator.blocks.*.convs.*",
            "generator.blocks.*.modulations.*.weight",
            "generator.to_image.*",
        ]
    elif base == "latent":  # only the latent's learned shift and scale train: every weight stays the source's
        from ...models.gan import GANConfig

        transfer["freeze_generator_blocks"] = len(GANConfig(**section.model).block_widths)  # all, with the mappings
        transfer["freeze"] = ["generator.to_image.*"]
    if "diffaugment" in extras:
        transfer["diffaugment"] = section.diffaugment
    if "cdc" in extras:
        transfer["cdc_weight"] = section.cdc_weight
        transfer["cdc_batch_size"] = section.cdc_batch_size
    return transfer


def _model_changes(strategy: str) -> dict:
    """Config fields a strategy changes in the target: the learned latent affine for "latent" and "+latent"."""
    base, *extras = strategy.split("+")
    return {"learned_latent_affine": True} if "latent" in (base, *extras) else {}


def _gan_recipe(output_dir: str, section, data: dict, max_steps: int, resume: bool, init_from="scratch", **kw) -> dict:
    return {
        "family": "gan",
        "output_dir": output_dir,
        "init_from": init_from,
        "seed": section.seed,
        "model": dict(section.model) if init_from == "scratch" else kw.pop("model_changes", {}),
        "data": data,
        "training": training_section(
            max_steps,
            section.batch_size,
            kw.pop("learning_rate", section.learning_rate),
            resume,
            ema_decay=kw.pop("ema_decay", section.ema_decay),
            sample_every=0,
            mode_seeking_weight=kw.pop("mode_seeking_weight", getattr(section, "mode_seeking_weight", 0.0)),
            channels_last=getattr(section, "channels_last", False),
        ),
        # The loop's own final evaluation is kept small: the bench scores every segment itself, the same way for all.
        "evaluation": {"num_samples": 64, "feature_network": kw.pop("feature_network")},
        "transfer": kw.pop("transfer", {}),
    }


def _generator_trainable(raw: dict) -> dict:
    """Trainable parameters of the whole GAN and of the generator alone, as the run's strategy leaves them."""
    from ...recipes import validate_recipe
    from ...training.gan import build_gan
    from ...training.strategy import apply_adapters, apply_freezing

    recipe = validate_recipe(raw)
    model = build_gan(recipe)[0]
    apply_freezing(model, recipe.transfer)
    apply_adapters(model, recipe.transfer, default_target="generator")

    trainable, total = model.num_parameters(only_trainable=True), model.num_parameters()
    generator_trainable = model.generator.num_parameters(only_trainable=True)
    generator_total = model.generator.num_parameters()
    return {
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_fraction": trainable / total,
        "generator_trainable_parameters": generator_trainable,
        "generator_total_parameters": generator_total,
        "generator_trainable_fraction": generator_trainable / generator_total,
    }


def gan_units(section, prepared: dict, done: dict) -> list[str]:
    """The jobs of a GAN scenario once its source is trained: each strategy, then each entry of its LoRA sweep."""
    return [*section.strategies, *(f"lora_sweep{index}" for index in range(len(section.lora_sweep)))]


def run_gan_unit(scenario: str, section, prepared: dict, unit: str) -> dict:
    """
    One strategy (with its `strategy_settings`) or LoRA sweep entry of a GAN scenario from its trained source, scored
    at each of `eval_steps`.
    """
    from ...models.gan import GANModel

    score, feature_network = (_glyph_scorer if scenario == "gan_glyphs" else _digits_scorer)(section, prepared)
    work, source_dir, target_data = prepared["work"], prepared["source_dir"], prepared["target_data"]
    if unit == "source":
        started = time.perf_counter()
        scores = score(GANModel.from_pretrained(source_dir).generator)
        log(f"{scenario} {unit}: FID {scores['fid']:.2f}")
        return {
            "curve": [{"step": 0, **scores}],
            "at_steps": {str(s): scores for s in section.report_steps},
            "final": scores,
            "steps": 0,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "trainable_parameters": 0,
            "trainable_fraction": 0.0,
            "generator_trainable_fraction": 0.0,
        }
    if unit.startswith("lora_sweep"):
        entry = section.lora_sweep[int(unit.removeprefix("lora_sweep"))]
        varied = dataclasses.replace(section, **{**section.strategy_settings.get("lora", {}), **entry})
        result = _run_gan_strategy(
            scenario, unit, "lora", varied, work, source_dir, target_data, score, feature_network
        )
        return {"settings": dict(entry), **result, "outputs": [_strategy_dir(work, unit)]}
    settings = section.strategy_settings.get(unit, {})
    varied = dataclasses.replace(section, **settings)
    result = _run_gan_strategy(scenario, unit, unit, varied, work, source_dir, target_data, score, feature_network)
    return {**({"settings": dict(settings)} if settings else {}), **result, "outputs": [_strategy_dir(work, unit)]}


def _gathered(section, units: dict) -> tuple[dict, list]:
    """The units' results as the scenario reports them: strategies in their order (steps to scratch's final FID
    added), then the LoRA sweep."""
    plain = {name: {k: v for k, v in result.items() if k != "outputs"} for name, result in units.items()}
    strategies = {strategy: plain[strategy] for strategy in section.strategies}
    _add_steps_to_scratch(strategies, "fid")
    return strategies, [plain[f"lora_sweep{index}"] for index in range(len(section.lora_sweep))]


def _strategy_dir(work: str, label: str) -> str:
    """Where a strategy's run folder lives in a scenario's work folder ("style+cdc" -> "style_cdc")."""
    return os.path.join(work, label.replace("+", "_"))


def _run_gan_strategy(
    name: str, label: str, strategy: str, section, work, source_dir, target_data, score, feature_network
) -> dict:
    """One strategy trained in segments up to each of `section.eval_steps`, scored after each."""
    from ...models.gan import GANModel

    output_dir = _strategy_dir(work, label)
    shutil.rmtree(output_dir, ignore_errors=True)
    init_from = "scratch" if strategy == "scratch" else source_dir
    transfer = {} if strategy == "scratch" else _gan_transfer(strategy, section)
    changes = {} if strategy == "scratch" else _model_changes(strategy)
    rates = {}
    if changes:
        rates["latent_learning_rate"] = section.latent_learning_rate
    if "bias" in strategy.split("+"):  # the generator's biases at their own rate, the discriminator at the scenario's
        rates["learning_rate"] = section.bias_learning_rate
        rates["discriminator_learning_rate"] = section.learning_rate
    if strategy.startswith("lora"):
        if section.lora_learning_rate is not None:
            rates["learning_rate"] = section.lora_learning_rate
        rates["discriminator_learning_rate"] = section.discriminator_learning_rate or section.learning_rate
    scheduler = section.lr_scheduler
    if strategy.startswith("lora") and section.lora_lr_scheduler is not None:
        scheduler = section.lora_lr_scheduler
    if strategy != "scratch" and scheduler != "constant":  # one schedule over every segment of the run
        rates["lr_scheduler"] = scheduler
        rates["lr_schedule_steps"] = section.eval_steps[-1]
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
            model_changes=changes,
        )
        raw["training"].update(rates)
        metrics, seconds = train_recipe(raw)
        started = time.perf_counter()
        scores = score(GANModel.from_pretrained(output_dir).generator)
        wall += seconds + time.perf_counter() - started
        train_seconds = metrics.get("train_seconds", 0.0) + train_seconds
        curve.append({"step": steps, **scores, "wall_seconds": round(wall, 1)})
    parameters = _generator_trainable(raw)
    log(
        f"{name} {label}: FID "
        + ", ".join(f"{p['step']}: {p['fid']:.2f}" for p in curve)
        + f" ({wall:.0f} s, G trainable {parameters['generator_trainable_fraction']:.1%})"
    )
    return {
        "curve": curve,
        "at_steps": {str(p["step"]): p for p in curve if p["step"] in section.report_steps},
        "final": curve[-1],
        "steps": section.eval_steps[-1],
        "wall_seconds": round(wall, 1),
        "train_seconds": round(train_seconds, 1),
        **parameters,
    }


def _add_steps_to_scratch(results: dict, key: str) -> None:
    """For each strategy: the first evaluated step whose FID is at most scratch's final FID (None: never)."""
    if "scratch" not in results:
        return
    threshold = results["scratch"]["final"][key]
    for strategy, result in results.items():
        if strategy == "source":
            result["steps_to_scratch_final_fid"] = 0 if result["final"][key] <= threshold else None
            continue
        result["steps_to_scratch_final_fid"] = first_step_reaching(result["curve"], key, threshold)


def _score_fields(scores: dict) -> dict:
    keep = ("fid", "kid", "kid_std", "num_generated", "num_real", "unseen_accuracy", "seen_accuracy")
    keep += ("fid_style", "kid_style", "unseen_style_accuracy", "seen_style_accuracy")
    keep += ("unseen_diversity", "seen_diversity")
    return {k: scores[k] for k in keep if k in scores}


def _digits_target_data(section) -> dict:
    return {
        "dataset": "digits",
        "classes": section.target_classes,
        "shots_per_class": section.target_shots,
        "held_out_fraction": section.held_out_fraction,
        "seed": 0,
    }


def prepare_gan_digits(scenario: str, section, work: str) -> dict:
    """New classes, first job: pretrain the source GAN on `source_classes` (all their images)."""
    work = os.path.join(work, scenario)
    source_dir = os.path.join(work, "source")
    shutil.rmtree(work, ignore_errors=True)
    source_data = {"dataset": "digits", "classes": section.source_classes, "held_out_fraction": 0.2, "seed": 0}
    log(f"{scenario}: pretraining the source GAN on digits {section.source_classes}")
    source_metrics, source_seconds = train_recipe(
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
    return {
        "work": work,
        "source_dir": source_dir,
        "target_data": _digits_target_data(section),
        "source_training": {
            "steps": section.source_steps,
            "wall_seconds": round(source_seconds, 1),
            "fid_on_source_classes": source_metrics.get("fid"),
        },
        "outputs": [source_dir],
    }


def _digits_held_out(section, prepared: dict):
    from ...data.images import load_image_splits
    from ...models.gan import GANConfig
    from ...recipes import ImageDataRecipe

    recipe = ImageDataRecipe(**prepared["target_data"])
    return load_image_splits(recipe, GANConfig(**section.model))["held_out"]


def _digits_scorer(section, prepared: dict):
    """(score(generator), the feature network of the runs' own evaluation) for the digits scenarios."""
    from ...evaluation.image_scores import score_generator

    held_out_images, held_out_labels = _digits_held_out(section, prepared)

    def score(generator):
        scores = score_generator(
            generator, held_out_images, held_out_labels, section.num_samples, "digits", seed=section.seed
        )
        return _score_fields(scores)

    return score, "digits"


def finish_gan_digits(scenario: str, section, prepared: dict, units: dict) -> dict:
    """New classes, last job: the strategies' and the sweep's results as the scenario's report."""
    strategies, sweep = _gathered(section, units)
    return {
        "source_classes": section.source_classes,
        "target_classes": section.target_classes,
        "source_training": prepared["source_training"],
        "num_target_train_images": len(section.target_classes) * section.target_shots,
        "num_held_out_images": len(_digits_held_out(section, prepared)[0]),
        "strategies": strategies,
        "lora_sweep": sweep,
    }


def _write_imagefolder(dataset, folder: str) -> None:
    """Glyph images as an imagefolder (one subfolder per class, named by the zero-padded label, so sorted = label)."""
    for index, (image, label) in enumerate(zip(dataset["image"], dataset["label"])):
        class_folder = os.path.join(folder, f"{label:02d}")
        os.makedirs(class_folder, exist_ok=True)
        image.save(os.path.join(class_folder, f"{index:06d}.png"))


def _glyph_characters(section) -> tuple[list[int], list[int]]:
    """The labels of the characters the transfer sees and of the unseen ones."""
    from ...data.glyphs import GLYPH_CHARACTERS

    seen = [GLYPH_CHARACTERS.index(c) for c in section.target_characters]
    return seen, [label for label in range(len(GLYPH_CHARACTERS)) if label not in seen]


def _glyph_evaluation(section):
    """The held-out target images: every character of the target font, jittered (images, labels)."""
    import torch

    from ...data.glyphs import glyphs_dataset
    from ...data.images import images_to_tensor

    size = section.model["image_size"]
    evaluation = glyphs_dataset([section.target_font], size, section.eval_samples_per_glyph, seed=1)
    return images_to_tensor(evaluation["image"], size, 1), torch.as_tensor(evaluation["label"])


def prepare_gan_glyphs(scenario: str, section, work: str) -> dict:
    """New font, first job: the corpora as imagefolders, then the source GAN pretrained on `source_fonts`."""
    import torch

    from ...data.glyphs import GLYPH_CHARACTERS, available_glyph_fonts, glyphs_dataset
    from ...evaluation.accuracy import classifier_accuracy
    from ...evaluation.image_scores import generate_images
    from ...models.gan import GANModel

    fonts = available_glyph_fonts()
    if section.target_font not in fonts:
        raise ValueError(f"gan_glyphs.target_font {section.target_font!r} is not one of {', '.join(fonts)}.")
    source_fonts = section.source_fonts or [f for f in fonts if f != section.target_font]
    if section.target_font in source_fonts:
        raise ValueError("gan_glyphs.source_fonts must not contain the target font.")
    strangers = [font for font in section.style_candidate_fonts or [] if font not in fonts]
    if strangers:
        raise ValueError(
            f"gan_glyphs.style_candidate_fonts has {strangers[0]!r}, which is not one of {', '.join(fonts)}."
        )
    unknown = [c for c in section.target_characters if c not in GLYPH_CHARACTERS]
    if unknown:
        raise ValueError(f"gan_glyphs.target_characters has {unknown[0]!r}, which is not one of the 62 glyphs.")
    size = section.model["image_size"]

    # The corpora as imagefolders: the recipe's data section reads them like any user's images.
    work = os.path.join(work, scenario)
    shutil.rmtree(work, ignore_errors=True)
    source_folder, target_folder = os.path.join(work, "data_source"), os.path.join(work, "data_target")
    _write_imagefolder(glyphs_dataset(source_fonts, size, section.source_samples_per_glyph, seed=0), source_folder)
    # Two jittered renderings per glyph so that the stratified held-out split of the run keeps one of each.
    _write_imagefolder(
        glyphs_dataset([section.target_font], size, max(2, 2 * section.target_shots), seed=0), target_folder
    )
    source_dir = os.path.join(work, "source")
    # The source run's own held-out split needs every character at least once.
    held_out = min(0.5, max(0.1, 1.5 / (len(source_fonts) * section.source_samples_per_glyph)))
    source_data = {"dataset": source_folder, "held_out_fraction": held_out, "seed": 0}
    log(f"gan_glyphs: pretraining the source GAN on {len(source_fonts)} fonts")
    # Trained in segments of source_eval_every steps (a constant rate: the same run as in one piece), after each the
    # source's own content accuracy: every character, drawn from its latents (in whatever source font), read by the
    # glyph classifier.
    all_labels = torch.arange(len(GLYPH_CHARACTERS)).repeat(section.eval_samples_per_glyph)
    source_seconds, source_curve = 0.0, []
    segments = list(range(section.source_eval_every, section.source_steps, section.source_eval_every))
    for index, steps in enumerate([*segments, section.source_steps]):
        raw = _gan_recipe(
            source_dir,
            section,
            source_data,
            steps,
            resume=index > 0,
            feature_network="glyphs",
            ema_decay=0.999,
            learning_rate=section.source_learning_rate or section.learning_rate,
            mode_seeking_weight=section.source_mode_seeking_weight,
        )
        source_seconds += train_recipe(raw)[1]
        images = generate_images(GANModel.from_pretrained(source_dir).generator, len(all_labels), all_labels, 2)
        accuracy = classifier_accuracy(images, all_labels, "glyphs")["accuracy"]
        source_curve.append({"step": steps, "content_accuracy": accuracy, "wall_seconds": round(source_seconds, 1)})
        log(f"gan_glyphs: source at {steps} steps, content accuracy on its own fonts {accuracy:.1%}")
    target_data = {
        "dataset": target_folder,
        "classes": _glyph_characters(section)[0],
        "shots_per_class": section.target_shots,
        "held_out_fraction": 0.5,
        "seed": 0,
    }
    return {
        "work": work,
        "source_dir": source_dir,
        "source_fonts": source_fonts,
        "target_data": target_data,
        "source_training": {
            "steps": section.source_steps,
            "wall_seconds": round(source_seconds, 1),
            "content_accuracy_curve": source_curve,
        },
        "source_content_accuracy": source_curve[-1]["content_accuracy"],
        "outputs": [source_dir, target_folder],
    }


def _glyph_scorer(section, prepared: dict):
    """(score(generator), the feature network of the runs' own evaluation) for the glyph scenario."""
    import torch

    from ...evaluation.accuracy import classifier_accuracy, style_accuracy
    from ...evaluation.diversity import within_class_diversity
    from ...evaluation.image_scores import generate_images, score_generator_in_spaces

    eval_images, eval_labels = _glyph_evaluation(section)
    seen, unseen = _glyph_characters(section)

    def score(generator):
        # Content: FID/KID in the glyph (character) classifier's features and its accuracy on the generated glyphs;
        # style: FID/KID in the font classifier's features and how often it names the target font; diversity: the
        # mean pairwise style-feature distance among each character's samples (0 when a character is memorised).
        spaces = score_generator_in_spaces(
            generator, eval_images, eval_labels, section.num_samples, ["glyphs", "fonts"], seed=section.seed
        )
        scores = _score_fields(spaces["glyphs"])
        scores["fid_style"], scores["kid_style"] = spaces["fonts"]["fid"], spaces["fonts"]["kid"]
        for key, labels in (("unseen", unseen), ("seen", seen)):
            labels = torch.as_tensor(labels).repeat(section.eval_samples_per_glyph)
            images = generate_images(generator, len(labels), labels, seed=section.seed + 1)
            scores[f"{key}_accuracy"] = classifier_accuracy(images, labels, "glyphs")["accuracy"]
            styled = style_accuracy(images, section.target_font, section.style_candidate_fonts, "fonts")
            scores[f"{key}_style_accuracy"] = styled["accuracy"]
            if section.eval_samples_per_glyph >= 2:  # pairs within a character
                scores[f"{key}_diversity"] = within_class_diversity(images, labels, "fonts")["diversity"]
        return scores

    return score, "glyphs"


def finish_gan_glyphs(scenario: str, section, prepared: dict, units: dict) -> dict:
    """New font, last job: the results, the sheet of the 62 generated characters and the diversity references."""
    import torch

    from ...data.glyphs import glyphs_dataset
    from ...data.images import images_to_tensor, load_image_splits
    from ...evaluation.diversity import set_diversity, within_class_diversity
    from ...models.gan import GANConfig
    from ...recipes import ImageDataRecipe

    strategies, sweep = _gathered(section, units)
    work, size = prepared["work"], section.model["image_size"]
    seen, unseen = _glyph_characters(section)
    sheet = glyph_sample_sheet(
        {"real": images_to_tensor(glyphs_dataset([section.target_font], size, 1, seed=2)["image"], size, 1)},
        {name: _strategy_dir(work, name) if name != "source" else prepared["source_dir"] for name in strategies},
        seen,
        os.path.join(work, "samples.png"),
        seed=section.seed + 3,
    )
    # What the diversity figures compare with: the real renderings of each unseen character (jitter only, one
    # font) and the shots themselves (one image per seen character).
    eval_images, eval_labels = _glyph_evaluation(section)
    unseen_rows = torch.isin(eval_labels, torch.as_tensor(unseen))
    target_data = prepared["target_data"]
    shots = load_image_splits(ImageDataRecipe(**target_data), GANConfig(**section.model))["train"][0]
    return {
        "image_size": size,
        "diversity_real_unseen": (
            within_class_diversity(eval_images[unseen_rows], eval_labels[unseen_rows], "fonts")["diversity"]
            if section.eval_samples_per_glyph >= 2
            else None
        ),
        "diversity_shots": set_diversity(shots, "fonts")["diversity"],
        "num_shots": len(shots),
        "source_training": prepared["source_training"],
        "source_content_accuracy": prepared["source_content_accuracy"],
        "source_fonts": prepared["source_fonts"],
        "target_font": section.target_font,
        "target_characters": section.target_characters,
        "num_target_train_images": len(seen) * section.target_shots,
        "num_held_out_images": len(eval_images),
        "num_unseen_characters": len(unseen),
        "strategies": strategies,
        "lora_sweep": sweep,
        "samples_figure": sheet,
    }


def glyph_sample_sheet(real: dict, folders: dict, seen: list[int], path: str, seed: int = 0) -> str:
    """
    One row of all 62 characters per model (a GAN folder each: the source, every strategy) under the real glyphs of
    the target font, the characters the run saw framed; written to `path` (PNG), which is returned.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ...data.glyphs import GLYPH_CHARACTERS
    from ...evaluation.image_scores import generate_images
    from ...models.gan import GANModel
    from ...utils import image_grid

    labels = torch.arange(len(GLYPH_CHARACTERS))
    rows = dict(real)
    for name, folder in folders.items():
        rows[name] = generate_images(GANModel.from_pretrained(folder).generator, len(labels), labels, seed=seed)
    figure, axes = plt.subplots(len(rows), 1, figsize=(15, 0.5 + 0.32 * len(rows)), squeeze=False)
    for axis, (name, images) in zip(axes[:, 0], rows.items()):
        axis.imshow(image_grid(images, nrow=len(labels), padding=1), cmap="gray", vmin=0, vmax=255)
        axis.set_yticks([])
        axis.set_xticks([])
        axis.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        width = images.shape[-1] * max(1, 32 // images.shape[-1]) + 1
        for label in seen:  # the seen characters, framed
            axis.add_patch(plt.Rectangle((label * width, 0), width, width, fill=False, edgecolor="red", linewidth=0.8))
    axes[0, 0].set_title(
        "62 characters of the target font: real, the unadapted source, each strategy (seen: framed)", fontsize=9
    )
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path
