"""Model cards for run folders, from the `model_cards/` templates through huggingface_hub's `ModelCard`.

A card says what the model is, what it was transferred from and with which strategy, how well it does (also as
model-index metadata), how to load it, and its limits. It is written as `README.md` at the end of every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# The templates ship inside the package (`model_cards/` at the repository root links here), so wheel installs write cards.
TEMPLATES_DIR = Path(__file__).resolve().parent / "model_cards"


def _template(family: str) -> Path:
    path = TEMPLATES_DIR / f"{family}.md"
    if not path.is_file():
        raise FileNotFoundError(f"No model card template at {path}: reinstall hf_genxfer (pip install -e .).")
    return path


def _read_json(folder: str, name: str):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _is_hub_id(name: str | None) -> bool:
    """A Hub repo id ("org/name" or "name"), not a local folder: only those go into the card's metadata."""
    return bool(name) and not os.path.exists(name) and name.count("/") <= 1 and not name.startswith((".", "/", "~"))


def training_curve(history: list[dict], path: str) -> bool:
    """Plots the logged losses (and evaluation scores) against steps into `path`; False when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for entry in history for k, v in entry.items() if k != "step" and isinstance(v, (int, float))})
    keys = [k for k in keys if k.startswith(("loss", "eval_", "validation_chrf", "validation_exact"))]
    if not keys:
        return False
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        points = [(entry["step"], entry[key]) for entry in history if key in entry]
        axis.plot([p[0] for p in points], [p[1] for p in points], label=key, marker="." if len(points) < 20 else None)
    axis.set_xlabel("step")
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def build_model_card(
    folder: str,
    repo_id: str | None = None,
    recipe=None,
    metrics: dict | None = None,
    transfer: dict | None = None,
    history: list[dict] | None = None,
    config: dict | None = None,
) -> ModelCard:
    """
    The card of a run folder. The loop passes the run's results from memory (`recipe`, `metrics`, `transfer`
    summary, `history`, the saved model's `config`); whatever is not given is read from the folder, which is how
    `genxfer push` re-cards an existing run.
    """
    from .families import get_family
    from .recipes import load_recipe

    if recipe is None:
        recipe = load_recipe(os.path.join(folder, "genxfer_recipe.yaml"))
    metrics = metrics if metrics is not None else (_read_json(folder, "metrics.json") or {})
    transfer = transfer if transfer is not None else _read_json(folder, "transfer_report.json")
    history = history if history is not None else (_read_json(folder, "training_history.json") or [])
    config = config if config is not None else (_read_json(folder, "config.json") or {})
    has_curve = bool(history) and training_curve(history, os.path.join(folder, "training_curve.png"))
    family = get_family(recipe.family)
    fields = family.resolve("card_fields")(recipe, metrics, config, folder)
    data = recipe.data
    base_model = None if recipe.init_from == "scratch" else recipe.init_from
    strategy = transfer["strategy"] if transfer else "scratch"
    task_names = getattr(data, "tasks", None) and list(data.tasks)
    if not task_names and len(config.get("task_names") or []) > 1:
        task_names = config["task_names"]
    tags = ["hf_genxfer", family.name, strategy]
    if base_model:
        tags.append("transfer-learning")
    if task_names:
        tags.append("multi-task")
    dataset = fields["dataset"]
    eval_results = [
        EvalResult(
            task_type=fields["task_type"],
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=fields["split"],
            metric_type=name,
            metric_name=name,
            metric_value=float(metrics[name]),
        )
        for name in fields["metric_names"]
        if isinstance(metrics.get(name), (int, float))
    ]
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="hf_genxfer",
        tags=tags,
        base_model=base_model if _is_hub_id(base_model) else None,
        datasets=[dataset] if _is_hub_id(dataset) and "/" in dataset else None,
        eval_results=eval_results or None,
        model_name=os.path.basename(os.path.normpath(folder)),
        pipeline_tag=fields["pipeline_tag"],
        # The run folder holds full weights trained from the base (a LoRA run's adapter merged in): a finetune.
        base_model_relation="finetune" if _is_hub_id(base_model) else None,
    )
    total = transfer["total_parameters"] if transfer else _count_parameters(folder)
    trainable = transfer["trainable_parameters"] if transfer else None
    values = {
        "model_name": os.path.basename(os.path.normpath(folder)),
        "repo_id": repo_id or folder,
        "dataset_description": fields["description"],
        "base_model": base_model,
        "strategy": strategy,
        "trainable_parameters": f"{trainable:,}" if trainable is not None else "",
        "total_parameters": f"{total:,}" if total is not None else "",
        "trainable_percent": f"{trainable / total:.1%}" if total and trainable is not None else "",
        "transfer_summary": _transfer_summary(transfer),
        "has_curve": has_curve,
        "has_adapter": os.path.isdir(os.path.join(folder, "adapter")),
        "steps": metrics.get("step", recipe.training.max_steps),
        "batch_size": recipe.training.batch_size,
        "train_seconds": metrics.get("train_seconds", "?"),
        "task_names": task_names,
        **fields["values"],
    }
    return ModelCard.from_template(card_data, template_path=str(_template(family.card_template)), **values)


def _count_parameters(folder: str) -> int | None:
    """Parameters stored in the folder's safetensors weights (tied tensors once)."""
    from safetensors import safe_open

    path = os.path.join(folder, "model.safetensors")
    if not os.path.isfile(path):
        return None
    total = 0
    with safe_open(path, framework="pt") as weights:
        for name in weights.keys():
            if not name.endswith(("._u", "._v")):  # spectral-norm power-iteration buffers
                shape = weights.get_slice(name).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += count
    return total


def _transfer_summary(transfer: dict | None) -> str:
    if not transfer or "parameters" not in transfer:
        return ""
    counts = transfer["parameters"]["counts"]
    fraction = transfer["parameters"]["transferred_fraction"]
    listed = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    return f"{listed} tensors; {fraction:.1%} of the target's parameters hold source values"


def build_adapter_card(
    folder: str, repo_id: str | None = None, recipe=None, transfer: dict | None = None
) -> ModelCard | None:
    """The card of a run's `adapter/` folder (PEFT's own is a blank template); None for runs without an adapter."""
    from .families import get_family
    from .recipes import load_recipe

    adapter_config = _read_json(os.path.join(folder, "adapter"), "adapter_config.json")
    if adapter_config is None:
        return None
    if recipe is None:
        recipe = load_recipe(os.path.join(folder, "genxfer_recipe.yaml"))
    transfer = transfer if transfer is not None else (_read_json(folder, "transfer_report.json") or {})
    family = get_family(recipe.family)
    fields = family.resolve("card_fields")(recipe, {}, {}, folder)
    base_model = recipe.init_from
    target_modules = adapter_config.get("target_modules")
    if isinstance(target_modules, (list, set, tuple)):
        target_modules = ", ".join(sorted(target_modules))
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="peft",
        tags=["hf_genxfer", family.name, "lora", "transfer-learning"],
        base_model=base_model if _is_hub_id(base_model) else None,
        base_model_relation="adapter" if _is_hub_id(base_model) else None,
        model_name=f"{os.path.basename(os.path.normpath(folder))}-adapter",
    )
    trainable = transfer.get("trainable_parameters")
    ratio = recipe.transfer.lora.loraplus_lr_ratio if recipe.transfer.lora is not None else None
    values = {
        "model_name": os.path.basename(os.path.normpath(folder)),
        "adapted_part": fields["adapted_part"],
        "base_model": base_model,
        "repo_id": repo_id or folder,
        "dataset_description": fields["adapter_description"],
        "trainable_parameters": f"{trainable:,}" if trainable is not None else "its",
        "r": adapter_config.get("r"),
        "lora_alpha": adapter_config.get("lora_alpha"),
        "kind": "DoRA (weight-decomposed LoRA)" if adapter_config.get("use_dora") else "LoRA",
        "target_modules": target_modules or "every linear and convolution layer",
        "auto_class": family.auto_class,
        "loraplus_lr_ratio": f"{ratio:g}" if ratio else None,
    }
    return ModelCard.from_template(card_data, template_path=str(_template("adapter")), **values)


def write_model_card(folder: str, repo_id: str | None = None, **results) -> str:
    """
    Writes `README.md` (and `training_curve.png`) into a run folder, and the adapter's card into `adapter/` when the
    run trained one; returns the run card's path. `results` (recipe, metrics, transfer, history, config) come from
    memory at the end of a run; whatever is missing is read from the folder.
    """
    card = build_model_card(folder, repo_id, **results)
    path = os.path.join(folder, "README.md")
    card.save(path)
    adapter_card = build_adapter_card(folder, repo_id, results.get("recipe"), results.get("transfer"))
    if adapter_card is not None:
        adapter_card.save(os.path.join(folder, "adapter", "README.md"))
    return path
