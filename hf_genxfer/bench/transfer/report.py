"""What `genxfer bench transfer` reports: its targets (met or missed, by how much), plots and the closing printout."""

from __future__ import annotations

import os

from ..core import (
    target_row,
)
from .config import TransferBenchConfig


def transfer_names(strategies: dict) -> list[str]:
    return [s for s in strategies if s not in ("source", "scratch")]


def evaluate_targets(results: dict, config: TransferBenchConfig) -> list[dict]:
    """The issue's acceptance targets, each with its measured value, threshold and whether it was met."""
    targets = []
    for scenario, ratio_300 in (("gan_digits", 0.7), ("gan_glyphs", 0.5), ("gan_digits_reversed", None)):
        if scenario not in results:
            continue
        strategies, section = results[scenario]["strategies"], getattr(config, scenario)
        transfers = transfer_names(strategies)
        if not transfers:
            continue
        if scenario == "gan_glyphs":
            targets += _glyph_targets(results[scenario])
        if ratio_300 is None:  # the reversed digits split: LoRA against full fine-tuning only
            targets += _lora_targets(scenario, strategies)
            continue
        best = min(transfers, key=lambda s: strategies[s]["final"]["fid"])
        best_fid = strategies[best]["final"]["fid"]
        baselines = [strategies[s]["final"]["fid"] for s in ("source", "scratch") if s in strategies]
        if baselines:
            targets.append(
                target_row(
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
                target_row(
                    f"{scenario}: best transfer ({best_early}) FID at {early} steps / scratch's",
                    round(ratio, 3),
                    f"<= {ratio_300}",
                    ratio <= ratio_300,
                )
            )
        targets += _lora_targets(scenario, strategies)
        if scenario == "gan_glyphs" and "source" in strategies:
            source_accuracy = strategies["source"]["final"]["unseen_accuracy"]
            gap = (source_accuracy - strategies[best]["final"]["unseen_accuracy"]) * 100
            targets.append(
                target_row(
                    f"gan_glyphs: unseen-character accuracy, source model minus best transfer ({best}), points",
                    round(gap, 1),
                    "<= 10",
                    gap <= 10,
                )
            )
    if "seq2seq" in results:
        strategies = results["seq2seq"]["strategies"]
        transfers = transfer_names(strategies)
        if transfers:
            best = max(transfers, key=lambda s: strategies[s]["final"]["chrf"])
            best_scores = strategies[best]["final"]
            baselines = [strategies[s]["final"]["chrf"] for s in ("source", "scratch") if s in strategies]
            if baselines:
                targets.append(
                    target_row(
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
                    target_row(
                        f"seq2seq: best transfer ({best}) chrF minus scratch's", round(gain, 2), ">= 10", gain >= 10
                    )
                )
                ratio = best_scores["exact_match"] / scratch["exact_match"] if scratch["exact_match"] else None
                targets.append(
                    target_row(
                        f"seq2seq: best transfer ({best}) exact match / scratch's",
                        None if ratio is None else round(ratio, 2),
                        ">= 2",
                        (ratio is None and best_scores["exact_match"] > 0) or (ratio is not None and ratio >= 2),
                        note="scratch's exact match is 0" if ratio is None else "",
                    )
                )
            if "lora" in strategies and "full" in strategies:
                gap = strategies["full"]["final"]["chrf"] - strategies["lora"]["final"]["chrf"]
                targets.append(
                    target_row("seq2seq: full fine-tuning chrF minus LoRA's", round(gap, 2), "<= 5", gap <= 5)
                )
                fraction = strategies["lora"]["trainable_fraction"]
                targets.append(
                    target_row("seq2seq: LoRA trainable fraction", round(fraction, 4), "<= 0.10", fraction <= 0.10)
                )
    second = results.get("seq2seq", {}).get("second_target")
    if second and "scratch" in second["strategies"]:
        strategies = second["strategies"]
        transfers = transfer_names(strategies)
        if transfers:
            best = max(transfers, key=lambda s: strategies[s]["final"]["chrf"])
            gain = strategies[best]["final"]["chrf"] - strategies["scratch"]["final"]["chrf"]
            targets.append(
                target_row(
                    f"seq2seq {second['language']}: best transfer ({best}, extended vocabulary) chrF minus scratch's",
                    round(gain, 2),
                    "> 0",
                    gain > 0,
                )
            )
    return targets


def _lora_targets(scenario: str, strategies: dict) -> list[dict]:
    """LoRA's final FID against full fine-tuning's, with its trainable share of the generator."""
    lora = next((s for s in ("lora", "lora+diffaugment") if s in strategies), None)
    full = next((s for s in ("full", "full+diffaugment") if s in strategies), None)
    if lora is None or full is None or lora.partition("+")[2] != full.partition("+")[2]:
        return []
    ratio = strategies[lora]["final"]["fid"] / strategies[full]["final"]["fid"]
    fraction = strategies[lora]["generator_trainable_fraction"]
    return [
        target_row(f"{scenario}: {lora} final FID / {full}'s", round(ratio, 3), "<= 1.3", ratio <= 1.3),
        target_row(
            f"{scenario}: {lora} trainable fraction of the generator (the adapted network; "
            f"whole GAN: {strategies[lora]['trainable_fraction']:.1%}, the discriminator trains fully)",
            round(fraction, 4),
            "<= 0.10",
            fraction <= 0.10,
        ),
    ]


def _glyph_checks(strategies: dict, name: str) -> list[tuple[str, float, str, bool]]:
    """One strategy's few-shot font checks: (what, value, threshold, met)."""
    final = strategies[name]["final"]
    checks = [
        (
            "unseen-character content accuracy",
            round(final["unseen_accuracy"], 3),
            ">= 0.70",
            final["unseen_accuracy"] >= 0.70,
        )
    ]
    if "source" in strategies:
        source = strategies["source"]["final"]
        gain = (final["unseen_style_accuracy"] - source["unseen_style_accuracy"]) * 100
        checks.append(
            ("unseen style accuracy minus the unadapted source's, points", round(gain, 1), ">= 30", gain >= 30)
        )
        ratio = final["fid_style"] / source["fid_style"]
        checks.append(("style FID / the unadapted source's", round(ratio, 3), "< 1", ratio < 1))
    if "scratch" in strategies:
        ratio = final["fid_style"] / strategies["scratch"]["final"]["fid_style"]
        checks.append(("style FID / scratch's", round(ratio, 3), "<= 0.5", ratio <= 0.5))
    return checks


def glyph_checks_by_strategy(result: dict) -> dict:
    """Every transfer strategy's few-shot font checks, for the JSON and the README table."""
    strategies = result["strategies"]
    names = [s for s in transfer_names(strategies) if "fid_style" in strategies[s]["final"]]
    return {name: _glyph_checks(strategies, name) for name in names}


def _glyph_targets(result: dict) -> list[dict]:
    """Few-shot font generation's targets, for the best transfer: the one meeting most of them (ties: the lower
    style FID): content kept, style moved, style FID below the source's and at most half scratch's."""
    strategies = result["strategies"]
    checks = glyph_checks_by_strategy(result)
    rows = []
    if checks:
        best = min(checks, key=lambda s: (-sum(c[3] for c in checks[s]), strategies[s]["final"]["fid_style"]))
        rows = [
            target_row(f"gan_glyphs: best transfer ({best}), {what}", value, threshold, met)
            for what, value, threshold, met in checks[best]
        ]
    own = result.get("source_content_accuracy")
    if own is not None:
        rows.append(
            target_row(
                "gan_glyphs: source model's content accuracy on its own fonts (all 62 characters)",
                round(own, 3),
                ">= 0.95",
                own >= 0.95,
            )
        )
    return rows


def write_plots(results: dict, out_dir: str, stem: str = "transfer") -> list[str]:
    """Quality against steps per scenario, and the Seq2Seq data-efficiency curve; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for scenario in ("gan_digits", "gan_digits_reversed", "gan_glyphs"):
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
    sheet = results.get("gan_glyphs", {}).get("samples_figure")
    if sheet and os.path.isfile(sheet):  # the 62 characters of each glyph model, drawn once by the scenario
        import shutil

        paths.append(shutil.copyfile(sheet, os.path.join(out_dir, f"{stem}_gan_glyphs_samples.png")))
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


def print_summary(report: dict) -> None:
    """The results table and the targets, as the bench's closing printout."""
    names = ("gan_digits", "gan_digits_reversed", "gan_glyphs", "seq2seq")
    sections = [(name, report[name]) for name in names if name in report]
    if "seq2seq" in report and report["seq2seq"].get("second_target"):
        second = report["seq2seq"]["second_target"]
        sections.append((f"seq2seq {second['language']}", second))
    for scenario, section in sections:
        worker = section.get("worker_seconds")  # its jobs' time, summed over the workers they ran in
        print(f"\n{scenario}" + (f" ({worker:.0f} s in workers)" if worker is not None else ""))
        for strategy, result in section["strategies"].items():
            cells = []
            for step, scores in result["at_steps"].items():
                if scenario.startswith("seq2seq"):
                    cells.append(f"@{step}: chrF {scores['chrf']:5.1f} EM {scores['exact_match']:6.1%}")
                else:
                    cell = f"@{step}: FID {scores['fid']:7.2f} KID {scores['kid']:7.3f}"
                    if "unseen_accuracy" in scores:
                        cell += f" acc {scores['unseen_accuracy']:.0%}"
                    if "unseen_style_accuracy" in scores:
                        cell += f" style FID {scores['fid_style']:.2f} acc {scores['unseen_style_accuracy']:.0%}"
                    if "unseen_diversity" in scores:
                        cell += f" div {scores['unseen_diversity']:.2f}"
                    cells.append(cell)
            fraction = result.get("generator_trainable_fraction", result["trainable_fraction"])
            print(f"  {strategy:22s} {' | '.join(cells)} | trainable {fraction:6.1%} | {result['wall_seconds']:.0f} s")
            if result.get("settings"):  # the scenario's strategy_settings for it
                print(f"  {'':22s} with {result['settings']}")
        for entry in section.get("lora_sweep", []):
            curve = ", ".join(f"{p['step']}: {p['fid']:.2f}" for p in entry["curve"])
            print(
                f"  LoRA sweep {entry['settings']}: FID {curve} | G trainable {entry['generator_trainable_fraction']:.1%}"
            )
    print("\ntargets")
    for target in report["targets"]:
        mark = "met " if target["met"] else "MISS"
        print(f"  {mark} {target['name']}: {target['value']} (target {target['threshold']})")
    print(f"\nwall time {report['wall_seconds']:.0f} s")
