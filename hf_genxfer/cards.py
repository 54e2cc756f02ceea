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


def build_model_card(folder: str, repo_id: str | None = None) -> ModelCard:
    """The card of a run folder written by `genxfer train` (reads its recipe, metrics and transfer report)."""
    from .recipes import load_recipe

    recipe = load_recipe(os.path.join(folder, "genxfer_recipe.yaml"))
    metrics = _read_json(folder, "metrics.json") or {}
    transfer = _read_json(folder, "transfer_report.json")
    history = _read_json(folder, "training_history.json") or []
    config = _read_json(folder, "config.json") or {}
    has_curve = bool(history) and training_curve(history, os.path.join(folder, "training_curve.png"))
    family = recipe.family
    data = recipe.data
    base_model = None if recipe.init_from == "scratch" else recipe.init_from
    strategy = transfer["strategy"] if transfer else "scratch"
    task_names = getattr(data, "tasks", None) and list(data.tasks)
    if not task_names and len(config.get("task_names") or []) > 1:
        task_names = config["task_names"]
    tags = ["hf_genxfer", family, strategy]
    if base_model:
        tags.append("transfer-learning")
    if task_names:
        tags.append("multi-task")
    if family == "gan":
        dataset = data.dataset
        description = f"the `{dataset}` images" + (f" (classes {data.classes})" if data.classes else "")
        if data.shots_per_class:
            description += f", {data.shots_per_class} images per class"
        task_type, split = "unconditional-image-generation", "held_out"
        pipeline_tag = task_type  # a diffusers pipeline samples it (GANPipeline / DiffusionPipeline)
        metric_names = ("fid", "kid")
    else:
        dataset = data.dataset
        description = (
            f"num2words pairs in `{data.language}` (numbers in [{data.low}, {data.high}), {data.train_size} pairs)"
            if dataset == "num2words"
            else f"the `{dataset}` pairs"
        )
        # transformers 5 removed the text2text-generation, translation and summarization pipelines, and its
        # text-generation pipeline is for decoder-only models: no pipeline tag would load this model correctly, so
        # the card sets none (the Hub then shows no widget), and names the results' task "text-generation".
        task_type, split = "text-generation", "test"
        pipeline_tag = None
        metric_names = ("exact_match", "chrf", "bleu")
    eval_results = [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=split,
            metric_type=name,
            metric_name=name,
            metric_value=float(metrics[name]),
        )
        for name in metric_names
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
        pipeline_tag=pipeline_tag,
        # The run folder holds full weights trained from the base (a LoRA run's adapter merged in): a finetune.
        base_model_relation="finetune" if _is_hub_id(base_model) else None,
    )
    total = transfer["total_parameters"] if transfer else _count_parameters(folder)
    trainable = transfer["trainable_parameters"] if transfer else None
    values = {
        "model_name": os.path.basename(os.path.normpath(folder)),
        "repo_id": repo_id or folder,
        "dataset_description": description,
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
    }
    if family == "gan":
        values.update(
            image_size=config.get("image_size"),
            image_channels=config.get("image_channels", 1),
            num_classes=config.get("num_classes"),
            adversarial_loss=config.get("adversarial_loss", "non_saturating"),
            r1_gamma=recipe.training.r1_gamma,
            ema_decay=recipe.training.ema_decay,
            feature_network=recipe.evaluation.feature_network,
            per_task=metrics.get("per_task", {}),
            **{k: metrics.get(k, float("nan")) for k in ("fid", "kid", "kid_std")},
            num_real=metrics.get("num_real", "?"),
            num_generated=metrics.get("num_generated", "?"),
            num_train_images=metrics.get("num_train_images", "?"),
        )
    else:
        examples = metrics.get("examples", [])
        backbone = config.get("backbone", {})
        values.update(
            source_language_code=data.source_language_code,
            target_language_code=data.target_language_code,
            generation_start=_generation_start(folder),
            backbone_type=backbone.get("model_type", "?"),
            examples=examples,
            example_input=examples[0]["source"] if examples else "4021",
            learning_rate=recipe.training.learning_rate,
            lr_scheduler=recipe.training.lr_scheduler,
            num_train_examples=metrics.get("num_train_examples", "?"),
            **{k: metrics.get(k, float("nan")) for k in ("exact_match", "chrf", "bleu")},
            num_examples=metrics.get("num_examples", "?"),
        )
    return ModelCard.from_template(card_data, template_path=str(_template(family)), **values)


def _generation_start(folder: str) -> str:
    """How the saved generation config tells the decoder the target language, for the card."""
    generation = _read_json(folder, "generation_config.json") or {}
    for name in ("forced_bos_token_id", "decoder_start_token_id"):
        if generation.get(name) is not None:
            return f"`{name}={generation[name]}`"
    return ""


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


def build_adapter_card(folder: str, repo_id: str | None = None) -> ModelCard | None:
    """The card of a run's `adapter/` folder (PEFT's own is a blank template); None for runs without an adapter."""
    from .recipes import load_recipe

    adapter_config = _read_json(os.path.join(folder, "adapter"), "adapter_config.json")
    if adapter_config is None:
        return None
    recipe = load_recipe(os.path.join(folder, "genxfer_recipe.yaml"))
    transfer = _read_json(folder, "transfer_report.json") or {}
    base_model = recipe.init_from
    family = recipe.family
    data = recipe.data
    description = (
        f"the `{data.dataset}` images" + (f" (classes {data.classes})" if getattr(data, "classes", None) else "")
        if family == "gan"
        else f"`{data.dataset}` pairs" + (f" in `{data.language}`" if getattr(data, "language", None) else "")
    )
    target_modules = adapter_config.get("target_modules")
    if isinstance(target_modules, (list, set, tuple)):
        target_modules = ", ".join(sorted(target_modules))
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="peft",
        tags=["hf_genxfer", family, "lora", "transfer-learning"],
        base_model=base_model if _is_hub_id(base_model) else None,
        base_model_relation="adapter" if _is_hub_id(base_model) else None,
        model_name=f"{os.path.basename(os.path.normpath(folder))}-adapter",
    )
    trainable = transfer.get("trainable_parameters")
    values = {
        "model_name": os.path.basename(os.path.normpath(folder)),
        "family": family,
        "base_model": base_model,
        "repo_id": repo_id or folder,
        "dataset_description": description,
        "trainable_parameters": f"{trainable:,}" if trainable is not None else "its",
        "r": adapter_config.get("r"),
        "lora_alpha": adapter_config.get("lora_alpha"),
        "target_modules": target_modules or "every linear and convolution layer",
        "auto_class": "AutoModel" if family == "gan" else "AutoModelForSeq2SeqLM",
    }
    return ModelCard.from_template(card_data, template_path=str(_template("adapter")), **values)


def write_model_card(folder: str, repo_id: str | None = None) -> str:
    """
    Writes `README.md` (and `training_curve.png`) into a run folder, and the adapter's card into `adapter/` when the
    run trained one; returns the run card's path.
    """
    card = build_model_card(folder, repo_id)
    path = os.path.join(folder, "README.md")
    card.save(path)
    adapter_card = build_adapter_card(folder, repo_id)
    if adapter_card is not None:
        adapter_card.save(os.path.join(folder, "adapter", "README.md"))
    return path
