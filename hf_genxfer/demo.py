"""`genxfer demo`: the main job on built-in data in a few minutes on 2 CPU cores.

It pretrains a class-conditional digits GAN (and an English number-to-words Seq2Seq model), scores each against an
untrained model of the same architecture, and leaves ordinary Hugging Face model folders behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def _recipe_path(name: str) -> Path:
    """A demo recipe from the package itself, so that the demo runs from a wheel install as from a checkout."""
    from .shipped_recipes import shipped_recipe

    return shipped_recipe(name)


def run_gan_demo(out: str, quick: bool = False) -> dict:
    import torch

    from .data.images import load_image_splits
    from .evaluation.image_scores import score_generator
    from .models.gan import GANModel
    from .recipes import load_recipe
    from .training.loop import train

    # The demo always starts afresh: a second `make demo` replaces the first one's run.
    overrides = [f"output_dir={os.path.join(out, 'gan_digits')}", "training.overwrite_output_dir=true"]
    if quick:
        overrides += ["training.max_steps=20", "training.checkpoint_every=10", "evaluation.num_samples=200"]
    recipe = load_recipe(_recipe_path("gan_digits_pretrain.yaml"), overrides)
    started = time.perf_counter()
    trained = train(recipe)
    seconds = time.perf_counter() - started

    # The same architecture, untrained, scored the same way: the baseline the trained model must beat.
    torch.manual_seed(recipe.seed)
    untrained = GANModel(GANModel.config_class.from_pretrained(recipe.output_dir))
    held_out_images, held_out_labels = load_image_splits(recipe.data, untrained.config)["held_out"]
    baseline = score_generator(
        untrained.generator,
        held_out_images,
        held_out_labels,
        recipe.evaluation.num_samples,
        recipe.evaluation.feature_network,
        seed=recipe.seed,
    )
    summary = {
        "folder": recipe.output_dir,
        "seconds": round(seconds, 1),
        "trained": {k: trained[k] for k in ("fid", "kid", "kid_std", "num_generated", "num_real")},
        "untrained": {k: baseline[k] for k in ("fid", "kid", "kid_std", "num_generated", "num_real")},
    }
    with open(os.path.join(recipe.output_dir, "demo_summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    return summary


def print_gan_summary(summary: dict) -> None:
    trained, untrained = summary["trained"], summary["untrained"]
    print()
    print(f"GAN on built-in digits ({summary['seconds']:.0f} s of training) -> {summary['folder']}")
    print(
        f"  FID/KID on {trained['num_generated']} samples vs {trained['num_real']} held-out real digits (lower is better)"
    )
    print(f"  {'':10s} {'FID':>10s} {'KID':>12s}")
    print(f"  {'trained':10s} {trained['fid']:10.3f} {trained['kid']:12.5f} ± {trained['kid_std']:.5f}")
    print(f"  {'untrained':10s} {untrained['fid']:10.3f} {untrained['kid']:12.5f} ± {untrained['kid_std']:.5f}")
    print(f"  sample grid: {os.path.join(summary['folder'], 'samples.png')}")


def run_seq2seq_demo(out: str, quick: bool = False) -> dict:
    from .recipes import load_recipe
    from .training.loop import train

    overrides = [f"output_dir={os.path.join(out, 's2s_num2words_en')}", "training.overwrite_output_dir=true"]
    if quick:
        overrides += [
            "training.max_steps=20",
            "training.eval_every=10",
            "training.checkpoint_every=10",
            "data.train_size=500",
            "data.test_size=50",
        ]
    recipe = load_recipe(_recipe_path("s2s_num2words_en_pretrain.yaml"), overrides)
    started = time.perf_counter()
    metrics = train(recipe)
    summary = {
        "folder": recipe.output_dir,
        "seconds": round(time.perf_counter() - started, 1),
        "steps": metrics["step"],
        "language": recipe.data.language,
        "number_range": [recipe.data.low, recipe.data.high],
        **{k: metrics[k] for k in ("exact_match", "chrf", "bleu", "num_examples", "examples")},
    }
    with open(os.path.join(recipe.output_dir, "demo_summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    return summary


def print_seq2seq_summary(summary: dict) -> None:
    low, high = summary["number_range"]
    print()
    print(
        f"Seq2Seq number-to-words ({summary['language']}), {summary['steps']} steps in {summary['seconds']:.0f} s -> {summary['folder']}"
    )
    print(f"  on {summary['num_examples']} held-out numbers in [{low}, {high}), never seen in training:")
    print(f"  exact match {summary['exact_match']:.1%}   chrF {summary['chrf']:.1f}   BLEU {summary['bleu']:.1f}")
    for example in summary["examples"]:
        mark = "ok" if example["prediction"] == example["reference"] else "  "
        print(f"  {mark} {example['source']:>6s} -> {example['prediction']}")
    print(f"  try: genxfer generate {summary['folder']} 4021 777")


def run_demo(out: str = "demo_out", quick: bool = False) -> dict:
    started = time.perf_counter()
    results = {"gan": run_gan_demo(out, quick=quick)}
    results["seq2seq"] = run_seq2seq_demo(out, quick=quick)
    print_gan_summary(results["gan"])
    print_seq2seq_summary(results["seq2seq"])
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\nDemo finished in {results['total_seconds']:.0f} s; outputs in {out}/")
    with open(os.path.join(out, "demo_summary.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    return results
