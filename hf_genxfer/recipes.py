"""Recipe schema: a run described in YAML, loaded into typed dataclasses, validated, and overridden with `--set`.

Unknown keys, wrong types and missing fields are errors with one sentence that names the field and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from huggingface_hub.errors import StrictDataclassError

from .errors import RecipeError
from .families import FAMILIES, get_family
from .recipe_yaml import RecipeLoader, load_yaml  # noqa: F401  (the recipe reader; re-exported)

# --------------------------------------------------------------------------------------------------------------------
# Sections


@dataclass
class ImageDataRecipe:
    """Where the images come from and which of them a run sees."""

    dataset: str = "digits"  # "digits" (built in), an imagefolder folder, or a Hub dataset id
    split: str = "train"
    image_column: str = "image"
    label_column: str | None = "label"
    classes: list[int] | None = None  # keep only these classes
    shots_per_class: int | None = None  # seeded few-shot subset of the training part
    held_out_fraction: float = 0.2  # the seeded, stratified part kept for evaluation
    tasks: dict[str, dict] | None = None  # multi-task: per task, the fields above that differ (e.g. classes)
    seed: int = 0
    fonts: list[str] | None = None  # dataset "glyphs": render these fonts only (default: every bundled font)
    renderings_per_glyph: int = 1  # dataset "glyphs": jittered renderings of each character of each font


@dataclass
class TextDataRecipe:
    """Where the text pairs come from: built-in num2words, or json/csv/Hub pairs."""

    dataset: str = "num2words"  # "num2words" (built in), a json/csv file, or a Hub dataset id
    language: str = "en"  # num2words language
    train_size: int = 20000
    validation_size: int = 500
    test_size: int = 1000
    low: int = 0  # number range [low, high) of the built-in pairs
    high: int = 10000
    source_column: str = "source"
    target_column: str = "target"
    max_source_length: int = 32
    max_target_length: int = 128
    objective: Literal["pairs", "text_infilling", "span_corruption"] = "pairs"  # denoising reads the target text
    tokenizer_languages: list[str] | None = None  # scratch: also cover these num2words languages' characters
    source_language_code: str | None = None  # a multilingual tokenizer's code for the sources (mBART en_XX,
    target_language_code: str | None = None  # M2M100 en, NLLB eng_Latn); the target code also starts generation
    tasks: dict[str, dict] | None = None  # multi-task: per task, the fields above that differ (e.g. language)
    seed: int = 0


@dataclass
class TrainingRecipe:
    """The accelerate loop; GAN-only and Seq2Seq-only fields say so."""

    max_steps: int = 1000
    batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4  # the generator's (GAN) or the model's (Seq2Seq)
    discriminator_learning_rate: float | None = None  # GAN: defaults to learning_rate
    adam_betas: list[float] | None = None  # default: [0.0, 0.99] for GANs, [0.9, 0.999] for Seq2Seq
    weight_decay: float = 0.0
    lr_scheduler: str = "constant"  # any transformers scheduler name: constant, linear, cosine, ...
    warmup_steps: int = 0
    # The steps the schedule spans (default max_steps): set it when a run is trained in segments or will be extended
    lr_schedule_steps: int | None = None
    max_grad_norm: float | None = None
    r1_gamma: float = 0.1  # GAN: weight of the R1 gradient penalty on real images (0 turns it off)
    auxiliary_class_weight: float = 1.0  # GAN with model.auxiliary_classifier: weight of its class losses
    latent_learning_rate: float | None = None  # GAN with model.learned_latent_affine: its rate (None: learning_rate)
    mode_seeking_weight: float = 0.0  # GAN: mode-seeking term (MSGAN, Mao et al. 2019): two latents, same class,
    # should give different images; keeps a conditional generator from drawing one image per class. 0: off
    r1_every: int = 4  # GAN: apply R1 every k discriminator steps (lazy regularisation)
    ema_decay: float | None = 0.999  # GAN: EMA of the generator used for sampling and saving (null: no EMA)
    mixed_precision: Literal["no", "bf16"] = "no"
    checkpoint_every: int = 500
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    overwrite_output_dir: bool = False  # start afresh in an output_dir holding another run's checkpoints (deleted)
    sample_every: int = 500  # GAN: sample grid PNG + tensorboard image
    log_every: int = 50
    eval_every: int = 0  # evaluate every k steps (0: only at the end); Seq2Seq on validation, GAN FID/KID on held-out
    early_stopping_patience: int | None = None  # Seq2Seq: stop after k evaluations without improvement
    early_stopping_metric: str = "chrf"
    report_to: str = "tensorboard"  # any accelerate tracker name, or "none"
    num_workers: int = 0
    optimizer_implementation: Literal["auto", "for_loop", "foreach", "fused"] = "auto"  # speed options: README
    group_by_length: bool = False  # Seq2Seq: batches of similar lengths (less padding computed)
    channels_last: bool = False  # GAN: convolutions in channels-last memory format
    compile: bool = False  # torch.compile the models' forward (opt-in: compiling takes a while)


@dataclass
class EvaluationRecipe:
    num_samples: int = 1000  # GAN: generated images scored against the held-out real ones
    feature_network: str = "digits"  # GAN: network whose features FID/KID compare
    batch_size: int = 256
    num_beams: int = 1  # Seq2Seq generation during evaluation
    max_new_tokens: int = 128
    num_examples: int = 5  # example generations in the card / printout


@dataclass
class LoraRecipe:
    """PEFT LoRA instead of full fine-tuning (the base weights stay frozen)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target: str | None = None  # gan: "generator" (default); seq2seq: "backbone" (default)
    modules: list[str] | None = None  # globs narrowing the adapted layers
    modules_to_save: list[str] | None = None  # trained in full beside the adapter, saved with it (PEFT's; globs)
    use_dora: bool = False  # PEFT's DoRA: a trained magnitude per output channel beside the low-rank update
    loraplus_lr_ratio: float | None = None  # LoRA+ (Hayou et al. 2024): the B matrices at this multiple of the rate


@dataclass
class TransferRecipe:
    """How a run that starts from a source model (`init_from`) adapts it; every field is optional."""

    strategy: str | None = None  # a name for reports and the card; derived from the fields when omitted
    include: list[str] | None = None  # globs of source parameters to transfer (default: all that match)
    exclude: list[str] | None = None  # globs of parameters to leave initialised
    freeze: list[str] | None = None  # globs of parameters to freeze
    freeze_discriminator_blocks: int = 0  # GAN: FreezeD, the discriminator's lowest k blocks
    freeze_generator_blocks: int | None = None  # GAN: style-only adaptation: the class embedding, mappings and the
    # generator's lowest k blocks stay frozen (content), the later blocks train (style); 0 freezes only the former
    fresh_discriminator: bool = False  # GAN: transfer the generator only; the discriminator restarts from its
    # initialisation (EWC's Fisher is still measured against the source discriminator)
    freeze_encoder: bool = False  # Seq2Seq
    freeze_embeddings: bool = False  # Seq2Seq
    freeze_decoder_layers: int = 0  # Seq2Seq: the lowest k decoder layers
    extend_vocabulary: bool = False  # Seq2Seq: add the characters of the target text the source tokenizer lacks
    # as new tokens (new embedding rows, initialised from the existing ones' mean, then trained; LoRA trains them too)
    retrain_tokenizer: bool = False  # Seq2Seq: a new character tokenizer for the target corpus; shared tokens keep
    # their source embedding rows (the vocabulary change is in the transfer report as "remapped")
    layerwise_lr_decay: float | None = None  # learning rate x decay**depth, counted from the output
    lora: LoraRecipe | None = None
    regularizer: Literal["none", "l2sp", "ewc"] = "none"  # keeps the weights near the source ones
    regularizer_weight: float = 0.01
    fisher_batches: int = 8  # EWC: batches of source data for the Fisher information
    diffaugment: str | None = None  # GAN: a DiffAugment policy, e.g. "color,translation,cutout"
    cdc_weight: float = 0.0  # GAN: cross-domain correspondence loss (keeps the source's sample similarities); 0: off
    cdc_batch_size: int = 16  # GAN: latents per step for the CDC loss


@dataclass
class MultitaskRecipe:
    """How a multi-task run mixes its tasks and weighs their losses."""

    mixing: Literal["proportional", "round_robin", "temperature"] = "proportional"
    cap: int | None = None  # proportional: examples counted per task at most (T5's K)
    temperature: float = 2.0  # temperature mixing: rate ~ size ** (1 / temperature)
    loss_weighting: Literal["equal", "fixed", "uncertainty", "gradnorm", "pcgrad"] = "equal"
    task_weights: dict[str, float] | None = None  # fixed weighting
    gradnorm_alpha: float = 1.5
    train_tasks: list[str] | None = None  # the tasks whose data trains the model (default: all); all are evaluated
    init_new_tasks_from: dict[str, str] | None = None  # adding a task: {new task: existing task whose parts it copies}


@dataclass
class Recipe:
    family: str  # a registered family (hf_genxfer.families): gan, seq2seq
    output_dir: str
    init_from: str = "scratch"  # "scratch", or a model folder / Hub id to start from
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)  # fields of GANConfig / Seq2SeqConfig
    data: Any = None  # ImageDataRecipe (gan) or TextDataRecipe (seq2seq), typed by `validate_recipe`
    training: TrainingRecipe = field(default_factory=TrainingRecipe)
    evaluation: EvaluationRecipe = field(default_factory=EvaluationRecipe)
    transfer: TransferRecipe = field(default_factory=TransferRecipe)
    multitask: MultitaskRecipe = field(default_factory=MultitaskRecipe)


# --------------------------------------------------------------------------------------------------------------------
# Validation


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" Did you mean {close[0]!r}?" if close else f" Allowed keys: {', '.join(sorted(allowed))}."


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _number(value) -> int | float | None:
    """An int or float, or a string that spells one ("2e-4" from a YAML 1.1 reader, "1_000"); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _coerce(value, hint, where: str):
    """Checks `value` against a type hint (int, float, str, bool, list[...], X | None, Literal[...], dict)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except RecipeError as error:
                errors.append(error)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}.")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where} must be a list, got {value!r}.")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where} must be a mapping of keys to values, got {value!r}.")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where} must be true or false, got {value!r}.")
        return value
    if hint is int:
        number = _number(value)
        if number is None or not math.isfinite(number) or number != int(number):
            raise RecipeError(f"{where} must be an integer, got {value!r}.")
        return int(number)
    if hint is float:
        number = _number(value)
        if number is None:
            raise RecipeError(f"{where} must be a number, got {value!r}.")
        if not math.isfinite(number):
            raise RecipeError(f"{where} must be a finite number, got {value!r}.")
        return float(number)
    if hint is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where} must be a string, got {value!r}.")
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    return value


def _build(cls, values, where: str):
    """Builds dataclass `cls` from a mapping, rejecting unknown keys and checking every field's type."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RecipeError(f"{where} must be a mapping of keys to values, got {values!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise RecipeError(f"Unknown recipe key {prefix}{unknown[0]}.{_suggest(unknown[0], list(fields))}")
    kwargs = {}
    for name, f in fields.items():
        if name in values:
            kwargs[name] = _coerce(values[name], hints[name], f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecipeError(f"The recipe is missing the required field {prefix}{name}.")
    return cls(**kwargs)


def build_section(cls, values, where: str = ""):
    """Builds dataclass `cls` from a mapping with the recipe's checks (unknown keys, types): for other YAML-backed
    settings such as the benches' fields."""
    return _build(cls, values, where)


def _check_model_keys(family: str, model: dict) -> None:
    """Model keys must be fields of the family's config class (transformers configs accept anything silently)."""
    config_class = get_family(family).resolve("config")
    allowed = [p for p in inspect.signature(config_class.__init__).parameters if p not in ("self", "kwargs")]
    for key in model:
        if key not in allowed:
            raise RecipeError(f"Unknown recipe key model.{key} for the {family} family.{_suggest(key, allowed)}")


def validate_recipe(raw: dict) -> Recipe:
    """A raw mapping (from YAML) -> a typed, validated `Recipe`."""
    if not isinstance(raw, dict):
        raise RecipeError("A recipe must be a YAML mapping with at least 'family' and 'output_dir'.")
    if "family" not in raw:
        raise RecipeError(f"The recipe is missing the required field family (one of {', '.join(FAMILIES)}).")
    recipe = _build(Recipe, raw, "")
    family = get_family(recipe.family)
    recipe.data = _build(family.resolve("data_section"), raw.get("data"), "data")
    _check_model_keys(recipe.family, recipe.model)
    _check_ranges(recipe)
    training = recipe.training
    betas = training.adam_betas
    if betas is not None and (len(betas) != 2 or not all(0 <= b < 1 for b in betas)):
        raise RecipeError(f"training.adam_betas must be two numbers in [0, 1), got {training.adam_betas}.")
    if training.ema_decay is not None and not 0 < training.ema_decay < 1:
        raise RecipeError(f"training.ema_decay must be between 0 and 1 (exclusive) or null, got {training.ema_decay}.")
    check_scheduler(training.lr_scheduler, "training.lr_scheduler")
    if training.overwrite_output_dir and training.resume_from_checkpoint not in (None, ""):
        raise RecipeError(
            "training.overwrite_output_dir deletes the checkpoints that training.resume_from_checkpoint would "
            "continue: choose one."
        )
    _check_transfer(recipe)
    _check_multitask(recipe)
    _check_model_values(recipe)
    return recipe


# Schedulers needing a metric per step or arguments a recipe does not pass (min_lr, num_decay_steps).
_SCHEDULERS_NEEDING_MORE = (
    "reduce_lr_on_plateau greedy cosine_with_min_lr cosine_warmup_with_min_lr warmup_stable_decay"
)


def check_scheduler(name, where: str) -> None:
    """`name` is a transformers scheduler that steps with the optimizer alone, or one sentence says which are."""
    from transformers import SchedulerType

    names = [s.value for s in SchedulerType if s.value not in _SCHEDULERS_NEEDING_MORE.split()]
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=1)
        raise RecipeError(
            f"{where} {name!r} is not a transformers scheduler this loop can step"
            + (f"; did you mean {close[0]!r}?" if close else f"; use one of {', '.join(names)}.")
        )


# Numeric fields and their ranges: (low, high, low inclusive); None is always allowed where the field is optional.
_RANGES = {
    "training.max_steps": (1, None, True),
    "training.batch_size": (1, None, True),
    "training.gradient_accumulation_steps": (1, None, True),
    "training.checkpoint_every": (1, None, True),
    "training.checkpoints_total_limit": (1, None, True),
    "training.log_every": (1, None, True),
    "training.learning_rate": (0, None, False),
    "training.discriminator_learning_rate": (0, None, False),
    "training.weight_decay": (0, None, True),
    "training.warmup_steps": (0, None, True),
    "training.lr_schedule_steps": (1, None, True),
    "training.max_grad_norm": (0, None, False),
    "training.r1_gamma": (0, None, True),
    "training.auxiliary_class_weight": (0, None, True),
    "training.mode_seeking_weight": (0, None, True),
    "training.latent_learning_rate": (0, None, False),
    "training.r1_every": (1, None, True),
    "training.sample_every": (0, None, True),
    "training.eval_every": (0, None, True),
    "training.early_stopping_patience": (1, None, True),
    "training.num_workers": (0, None, True),
    "evaluation.num_samples": (1, None, True),
    "evaluation.batch_size": (1, None, True),
    "evaluation.num_beams": (1, None, True),
    "evaluation.max_new_tokens": (1, None, True),
    "evaluation.num_examples": (0, None, True),
    "transfer.freeze_discriminator_blocks": (0, None, True),
    "transfer.freeze_generator_blocks": (0, None, True),
    "transfer.freeze_decoder_layers": (0, None, True),
    "transfer.fisher_batches": (1, None, True),
    "transfer.cdc_weight": (0, None, True),
    "transfer.cdc_batch_size": (3, None, True),
    "transfer.lora.r": (1, None, True),
    "transfer.lora.alpha": (0, None, False),
    "transfer.lora.dropout": (0, 1, True),
    "transfer.lora.loraplus_lr_ratio": (0, None, False),
    "multitask.cap": (1, None, True),
    "multitask.temperature": (0, None, False),
    "multitask.gradnorm_alpha": (0, None, True),
    "data.shots_per_class": (1, None, True),
    "data.renderings_per_glyph": (1, None, True),
    "data.held_out_fraction": (0, 1, False),
    "data.train_size": (1, None, True),
    "data.validation_size": (0, None, True),
    "data.test_size": (1, None, True),
    "data.max_source_length": (1, None, True),
    "data.max_target_length": (1, None, True),
}


def _check_ranges(recipe: Recipe) -> None:
    for path, (low, high, low_inclusive) in _RANGES.items():
        node = recipe
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if node is None:
            continue
        too_low = node < low if low_inclusive else node <= low
        too_high = high is not None and node >= high
        if too_low or too_high:
            if high is not None:
                span = f"in [{low}, {high})" if low_inclusive else f"between {low} and {high} (exclusive)"
            else:
                span = f"at least {low}" if low_inclusive else f"greater than {low}"
            raise RecipeError(f"{path} must be {span}, got {node!r}.")
    data = recipe.data
    if getattr(data, "low", None) is not None and data.low >= data.high:
        raise RecipeError(f"data.low must be below data.high, got low={data.low} and high={data.high}.")
    for task, weight in (recipe.multitask.task_weights or {}).items():
        number = _number(weight)
        if number is None or not math.isfinite(number) or number < 0:
            raise RecipeError(f"multitask.task_weights.{task} must be a number of at least 0, got {weight!r}.")


def _config_field_types(config_class) -> dict:
    """The annotated types of a config class's own fields (its `__init__` arguments, or its dataclass fields)."""
    try:
        return typing.get_type_hints(config_class.__init__)
    except Exception:  # annotations naming what the module does not import (a base class's torch types)
        import sys

        namespace = vars(sys.modules[config_class.__module__])
        hints = {}
        for name, annotation in vars(config_class).get("__annotations__", {}).items():
            try:
                hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307
            except Exception:
                continue
        return hints


def _check_model_values(recipe: Recipe) -> None:
    """
    The model fields have their config's types (with a recipe's sentence when not), and a scratch model's fields
    build its config here, so a bad value fails before any data or training.
    """
    hints = _config_field_types(get_family(recipe.family).resolve("config"))
    for key, value in list(recipe.model.items()):
        hint = hints.get(key)
        nested = any(dataclasses.is_dataclass(arg) for arg in (typing.get_args(hint) or [hint]))
        if hint is not None and value is not None and not nested:  # a nested config (the backbone) checks itself
            recipe.model[key] = _coerce(value, hint, f"model.{key}")
    if recipe.init_from != "scratch":
        return  # the fields update the source's config; checked when the target is built
    fields = dict(recipe.model)
    fields.pop("backbone", None)  # a Seq2Seq backbone is sized to the tokenizer once it is trained
    try:
        get_family(recipe.family).resolve("config")(**fields)
    except (ValueError, TypeError, KeyError, StrictDataclassError) as error:
        raise RecipeError(f"model: {' '.join(str(error).split())}") from None


def _check_multitask(recipe: Recipe) -> None:
    tasks = getattr(recipe.data, "tasks", None)
    names = recipe.model.get("task_names")
    if tasks is None:
        if names is not None:
            raise RecipeError("model.task_names needs data.tasks: give each task its data (e.g. its classes).")
        return
    if recipe.transfer.cdc_weight:
        raise RecipeError("transfer.cdc_weight is for single-task GANs (not multi-task yet): drop it or data.tasks.")
    if recipe.init_from == "scratch" and sorted(tasks) != sorted(names or []):
        raise RecipeError(
            f"data.tasks ({', '.join(tasks)}) and model.task_names ({', '.join(names or [])}) must name the same tasks."
        )
    allowed = [f.name for f in dataclasses.fields(type(recipe.data)) if f.name != "tasks"]
    for task, overrides in tasks.items():
        if not isinstance(overrides, dict):
            raise RecipeError(f"data.tasks.{task} must be a mapping of data fields, got {overrides!r}.")
        for key in overrides:
            if key not in allowed:
                raise RecipeError(f"Unknown recipe key data.tasks.{task}.{key}.{_suggest(key, allowed)}")
    for task, overrides in tasks.items():
        if "source_language_code" in overrides or "target_language_code" in overrides:
            raise RecipeError(
                f"data.tasks.{task} sets a language code: per-task language codes are not supported yet; give "
                "every task the same codes in data, or train one model per language pair."
            )
    train_tasks = recipe.multitask.train_tasks
    if train_tasks is not None and (not train_tasks or any(task not in tasks for task in train_tasks)):
        raise RecipeError(f"multitask.train_tasks must be a non-empty subset of data.tasks ({', '.join(tasks)}).")
    weights = recipe.multitask.task_weights
    if recipe.multitask.loss_weighting == "fixed" and (weights is None or sorted(weights) != sorted(tasks)):
        raise RecipeError("multitask.loss_weighting=fixed needs multitask.task_weights with one weight per task.")


def task_data(data, task: str):
    """The data section of one task of a multi-task recipe: the shared fields updated by the task's own."""
    values = {f.name: getattr(data, f.name) for f in dataclasses.fields(data) if f.name != "tasks"}
    values.update(data.tasks[task])
    return _build(type(data), values, f"data.tasks.{task}")


def _check_transfer(recipe: Recipe) -> None:
    transfer = recipe.transfer
    if recipe.init_from == "scratch" and transfer != TransferRecipe():
        changed = [f.name for f in dataclasses.fields(transfer) if getattr(transfer, f.name) != f.default]
        raise RecipeError(
            f"transfer.{changed[0]} needs a source model: set init_from to a model folder or Hub id, or drop it."
        )
    own = set(get_family(recipe.family).transfer_fields)
    for other in FAMILIES.values():
        for name in set(other.transfer_fields) - own:
            if getattr(transfer, name) not in (0, False, None):
                raise RecipeError(f"transfer.{name} does not apply to the {recipe.family} family: drop it.")
    if transfer.fresh_discriminator and transfer.freeze_discriminator_blocks:
        raise RecipeError(
            "transfer.fresh_discriminator and transfer.freeze_discriminator_blocks do not combine (FreezeD keeps the "
            "source discriminator's lower blocks): choose one."
        )
    if transfer.regularizer_weight < 0:
        raise RecipeError(f"transfer.regularizer_weight must be at least 0, got {transfer.regularizer_weight}.")
    if transfer.layerwise_lr_decay is not None and not 0 < transfer.layerwise_lr_decay <= 1:
        raise RecipeError(f"transfer.layerwise_lr_decay must be in (0, 1], got {transfer.layerwise_lr_decay}.")
    if transfer.extend_vocabulary and transfer.retrain_tokenizer:
        raise RecipeError(
            "transfer.extend_vocabulary adds tokens to the source tokenizer and transfer.retrain_tokenizer replaces "
            "it: choose one."
        )
    if transfer.lora is not None and transfer.layerwise_lr_decay is not None:
        raise RecipeError("transfer.lora and transfer.layerwise_lr_decay do not combine: choose one.")


# --------------------------------------------------------------------------------------------------------------------
# Loading and overrides


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """`"a.b=c"` -> (["a", "b"], c), with c parsed as YAML (numbers, booleans, null, lists)."""
    if "=" not in assignment:
        raise RecipeError(f"--set takes key=value (e.g. training.max_steps=100), got {assignment!r}.")
    key, value = assignment.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise RecipeError(f"--set needs a key before '=', got {assignment!r}.")
    if not value.strip():
        return path, ""
    fix = "quote text that should stay as written, e.g. --set 'key=\"[1,\"'"
    return path, load_yaml(value, f"The value of --set {assignment}", fix=fix, show_position=False)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Applies `--set a.b=c` overrides to a raw recipe mapping (a copy)."""
    import copy

    raw = copy.deepcopy(raw)
    for assignment in overrides or []:
        path, value = parse_override(assignment)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"--set {assignment}: {part} is a value, not a section.")
            node = child
        node[path[-1]] = value
    return raw


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Reads a YAML recipe, applies `--set` overrides and validates it."""
    if not os.path.isfile(path):
        raise RecipeError(
            f"No recipe file at {str(path)!r}: pass the path to a YAML recipe, e.g. recipes/gan_digits_pretrain.yaml."
        )
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"Cannot read the recipe {str(path)!r} ({error}): pass a UTF-8 YAML file.") from None
    raw = load_yaml(text, str(path))
    return validate_recipe(apply_overrides(raw or {}, overrides or []))


def recipe_to_dict(recipe: Recipe) -> dict:
    return dataclasses.asdict(recipe)
