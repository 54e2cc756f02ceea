"""What `genxfer bench multitask` reports: its targets (met or missed, by how much), plots and the closing printout."""

from __future__ import annotations

import os

from ..core import (
    target_row,
)
from .config import VARIANTS, MultitaskBenchConfig


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
                    target_row(
                        f"seq2seq {mode}: Δp over one model per language (balanced, {'+'.join(balanced['delta_p_metrics'])}), %",
                        value,
                        ">= 0",
                        value is not None and value >= 0,
                    )
                )
                ratio = balanced["parameter_ratio"]
                targets.append(
                    target_row(
                        f"seq2seq {mode}: total parameters / the single-task models' total",
                        ratio,
                        "<= 0.6",
                        ratio <= 0.6,
                    )
                )
        for mode, skewed in s2s["sharing"]["low_resource"].items():
            gain = skewed["low_resource_gain"]["chrf"]
            targets.append(
                target_row(
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
                target_row(f"gan {name}: mean FID / the separate GANs' mean FID", ratio, "<= 1.10", ratio <= 1.10)
            )
            targets.append(
                target_row(
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
