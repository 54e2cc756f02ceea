"""The speed bench's targets (issue #15's "done when"), its plot and its printout."""

from __future__ import annotations

import os

from ..core import target_row

QUICK_SECONDS = 15 * 60


def _best(ratios: dict) -> tuple[str, float]:
    variant = max(ratios, key=ratios.get)
    return variant, ratios[variant]


def evaluate_targets(report: dict) -> list[dict]:
    rows = []
    if report.get("mode") == "quick":
        seconds = report["wall_seconds"]
        rows.append(target_row("quick run wall seconds", seconds, QUICK_SECONDS, seconds < QUICK_SECONDS))
    for name, case in report.get("gan", {}).items():
        ratio = case["ratio_vs_plain"]["ours"]
        rows.append(target_row(f"{name}: GAN images/s, ours / plain loop", ratio, 1.0, ratio >= 1.0))
        variant, best = _best(case["ratio_vs_plain"])
        rows.append(
            target_row(f"{name}: GAN images/s, best ours / plain (goal)", best, 1.1, best >= 1.1, f"variant {variant}")
        )
        memory = case.get("memory")
        if memory:
            ratio = memory["training_mib_ratio"]
            rows.append(target_row(f"{name}: GAN peak training memory, ours / plain", ratio, 1.1, ratio <= 1.1))
    for name, case in report.get("seq2seq", {}).items():
        variant, best = _best(case["ratio_vs_trainer"])
        rows.append(
            target_row(
                f"{name}: Seq2Seq target tokens/s, ours / Seq2SeqTrainer", best, 1.1, best >= 1.1, f"variant {variant}"
            )
        )
        for setting, entry in case.get("generation", {}).items():
            variants = {"ours": entry["ratio_ours_vs_bare"]}
            if "ratio_compiled_vs_bare" in entry:  # with the option on: generate(compile=True)
                variants["compile=True"] = entry["ratio_compiled_vs_bare"]
            variant, ratio = _best(variants)
            rows.append(
                target_row(
                    f"{name}: generation {setting}, ours / bare backbone",
                    ratio,
                    1.0,
                    ratio >= 1.0,
                    f"variant {variant}",
                )
            )
            overhead = entry["multitask_overhead"]
            rows.append(
                target_row(f"{name}: multi-task routing overhead, {setting}", overhead, 0.05, overhead <= 0.05)
            )
    return rows


def write_plots(report: dict, out_dir: str, stem: str) -> list[str]:
    """One bar chart: every measured ratio (ours over its reference), with the 1.0 line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    for name, case in report.get("gan", {}).items():
        for variant, ratio in case["ratio_vs_plain"].items():
            labels.append(f"{name} {variant}\n/ plain")
            values.append(ratio)
        labels.append(f"{name} pipeline\n/ generator")
        values.append(case["pipeline"]["ratio_vs_direct"])
    for name, case in report.get("seq2seq", {}).items():
        for variant, ratio in case["ratio_vs_trainer"].items():
            labels.append(f"{name} {variant}\n/ Seq2SeqTrainer")
            values.append(ratio)
        for setting, entry in case.get("generation", {}).items():
            labels.append(f"{name} {setting}\nours / bare")
            values.append(entry["ratio_ours_vs_bare"])
            if "ratio_compiled_vs_bare" in entry:
                labels.append(f"{name} {setting}\ncompile=True / bare")
                values.append(entry["ratio_compiled_vs_bare"])
    if not values:
        return []
    figure, axis = plt.subplots(figsize=(max(6, 0.55 * len(values)), 4.5))
    colors = ["tab:green" if v >= 1.0 else "tab:red" for v in values]
    axis.bar(range(len(values)), values, color=colors)
    axis.axhline(1.0, color="black", linewidth=1)
    axis.set_xticks(range(len(values)))
    axis.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    axis.set_ylabel("speed ratio (median of interleaved repetitions)")
    axis.set_title(f"genxfer bench speed, {report['date'][:10]}, {report['machine']['cpu']}", fontsize=9)
    figure.tight_layout()
    path = os.path.join(out_dir, f"{stem}_ratios.png")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return [path]


def print_summary(report: dict) -> None:
    print(f"\ngenxfer bench speed ({report['mode']}), {report['machine']['cpu']}, {report['wall_seconds']:.0f} s")
    for name, case in report.get("gan", {}).items():
        rates = ", ".join(f"{k} {v:.0f}" for k, v in case["images_per_second"].items())
        print(f"  {name}: images/s {rates}; pipeline / generator {case['pipeline']['ratio_vs_direct']:.2f}")
    for name, case in report.get("seq2seq", {}).items():
        rates = ", ".join(f"{k} {v:.0f}" for k, v in case["target_tokens_per_second"].items())
        print(f"  {name}: target tokens/s {rates}; padding share {case['padding_share']}")
    print("Targets:")
    for row in report["targets"]:
        mark = {True: "met", False: "MISSED", None: "-"}[row["met"]]
        note = f" ({row['note']})" if row.get("note") else ""
        print(f"  [{mark}] {row['name']}: {row['value']} (target {row['threshold']}){note}")
