"""The fields of `genxfer bench multitask`: the Seq2Seq and GAN sections, the quick overrides and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import RecipeError
from ..core import (
    build_bench_config,
)

SHARING_MODES = ("hard", "shared_encoder", "shared_structure")


WEIGHTINGS = ("equal", "fixed", "uncertainty", "gradnorm", "pcgrad")


LOWER_IS_BETTER = ("fid", "kid")


VARIANTS = ("balanced", "low_resource")


@dataclass
class Seq2SeqMultitaskBench:
    """Languages as tasks: one model per language against one model for all, in each sharing mode."""

    enabled: bool = True
    languages: list[str] = field(default_factory=lambda: ["en", "fr", "de", "es"])
    train_size: int = 2000  # pairs per language
    low_resource_language: str = "es"
    low_resource_train_size: int = 50  # that language's pairs in the low-resource variant
    high: int = 1_000_000  # numbers in [0, high)
    validation_size: int = 100  # fixes the test numbers' offset; not scored during training
    test_size: int = 300  # held-out numbers per language
    # A deep encoder and a shallow decoder (Kasai et al., 2021): the part every task shares is the larger one, so a
    # decoder per task costs about half of four separate models' parameters (0.51x; with 2 + 2 layers: 0.69x).
    model: dict = field(
        default_factory=lambda: {
            "backbone": {
                "d_model": 128,
                "encoder_layers": 3,
                "decoder_layers": 1,
                "encoder_attention_heads": 4,
                "decoder_attention_heads": 4,
                "encoder_ffn_dim": 256,
                "decoder_ffn_dim": 256,
            }
        }
    )
    # Schedule chosen by trial runs (README, "Why the benches' fields are what they are").
    steps: int = 1000  # each single-task model
    batch_size: int = 32
    multitask_steps: int = 1000
    multitask_batch_size: int | None = None  # default: batch_size x tasks, so each task sees about as many pairs
    learning_rate: float = 0.0005
    multitask_learning_rate: float | None = None  # default: learning_rate
    warmup_steps: int = 100
    # Round-robin: each language a quarter of every batch, so a low-resource language is not starved (README).
    mixing: str = "round_robin"
    temperature: float = 2.0  # for mixing="temperature"
    modes: list[str] = field(default_factory=lambda: list(SHARING_MODES))
    low_resource_modes: list[str] = field(default_factory=lambda: ["hard", "shared_encoder", "shared_structure"])
    # shared_structure: what each task owns; with a one-layer decoder, "top_decoder_layers" would be the whole decoder
    task_specific: str = "lora"
    task_specific_layers: int = 1  # for task_specific="top_decoder_layers"
    lora_rank: int = 8  # for task_specific="lora"
    weightings: list[str] = field(default_factory=lambda: ["uncertainty", "gradnorm", "pcgrad"])  # + equal
    weighting_variant: str = "balanced"  # the variant the weightings run on
    task_weights: dict[str, float] | None = None  # for the "fixed" weighting
    delta_p_metrics: list[str] = field(default_factory=lambda: ["exact_match", "chrf"])
    max_new_tokens: int = 96
    seed: int = 0


@dataclass
class GANMultitaskBench:
    """Digit groups as tasks: separate GANs against one GAN with a shared bottom and a head per task."""

    enabled: bool = True
    tasks: dict[str, list[int]] = field(default_factory=lambda: {"low": [0, 1, 2, 3, 4], "high": [5, 6, 7, 8, 9]})
    model: dict = field(
        default_factory=lambda: {
            "image_size": 8,
            "image_channels": 1,
            "latent_size": 64,
            "base_width": 32,
            "layers_per_block": 2,
            "num_classes": 10,
        }
    )
    steps: int = 800  # each separate GAN
    batch_size: int = 64
    multitask_steps: int = 800
    multitask_batch_size: int | None = None  # default: batch_size x tasks, so each task sees as many images
    learning_rate: float = 0.0002
    # Two time-scale updates (Heusel et al., 2017): a faster discriminator than generator (README).
    discriminator_learning_rate: float | None = 0.0008
    # The first int is "the shared bottom"; add null for a fully shared generator with a task embedding.
    # 0 shares the latent mapping only (each group owns both blocks); the discriminator's trunk is shared either way.
    shared_blocks: list[int | None] = field(default_factory=lambda: [1, 0])
    mixing: str = "proportional"
    loss_weighting: str = "equal"
    held_out_fraction: float = 0.2
    num_samples: int = 1000  # generated images per task and evaluation
    ema_decay: float = 0.999
    # KID is close to 0, so relative KID changes explode: Δp uses FID unless told otherwise (both are reported).
    delta_p_metrics: list[str] = field(default_factory=lambda: ["fid"])
    add_task: bool = True
    new_task: str = "odd"
    new_task_classes: list[int] = field(default_factory=lambda: [1, 3, 5, 7, 9])
    new_task_init_from: str = "high"  # the existing task whose heads the new task's start from
    add_task_steps: int = 800
    add_task_freeze: list[bool] = field(default_factory=lambda: [True, False])  # shared generator parts frozen?
    # Separate and multi-task GANs are trained once per seed and compared on the mean over seeds: one seed's FID
    # moves more than the gaps between arms (README). Adding a task starts from the first seed's multi-task GAN.
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


@dataclass
class MultitaskBenchConfig:
    seq2seq: Seq2SeqMultitaskBench = field(default_factory=Seq2SeqMultitaskBench)
    gan: GANMultitaskBench = field(default_factory=GANMultitaskBench)
    workers: int = 2  # runs side by side in this many processes
    threads_per_worker: int = 1


# Quick mode: the same protocol with shorter schedules, smaller evaluations and fewer variants (15 minutes, 2 cores).
QUICK_OVERRIDES = [
    "seq2seq.batch_size=16",
    "seq2seq.steps=150",
    "seq2seq.multitask_steps=150",
    "seq2seq.warmup_steps=15",
    "seq2seq.test_size=100",
    "seq2seq.low_resource_modes=[hard,shared_encoder]",
    "seq2seq.weightings=[uncertainty,pcgrad]",
    "gan.steps=250",
    "gan.multitask_steps=250",
    "gan.add_task_steps=250",
    "gan.shared_blocks=[1]",
    "gan.num_samples=500",
    "gan.ema_decay=0.99",
    "gan.seeds=[0]",
]


def resolve_config(quick: bool = False, overrides: list[str] | None = None) -> MultitaskBenchConfig:
    """The bench's fields: the defaults, then the quick-mode overrides, then the user's `--set` ones."""
    return build_bench_config(MultitaskBenchConfig, QUICK_OVERRIDES, quick, overrides, _check)


def _check(config: MultitaskBenchConfig) -> None:
    s, g = config.seq2seq, config.gan
    if not g.seeds or len(set(g.seeds)) != len(g.seeds) or any(seed < 0 for seed in g.seeds):
        raise RecipeError(f"gan.seeds must be one or more distinct non-negative integers, got {g.seeds}.")
    if len(s.languages) < 2 or len(set(s.languages)) != len(s.languages):
        raise RecipeError(f"seq2seq.languages must be two or more distinct languages, got {s.languages}.")
    if s.low_resource_language not in s.languages:
        raise RecipeError(f"seq2seq.low_resource_language {s.low_resource_language!r} must be in seq2seq.languages.")
    for name in ("modes", "low_resource_modes"):
        for mode in getattr(s, name):
            if mode not in SHARING_MODES:
                raise RecipeError(f"seq2seq.{name} has {mode!r}; choose from {', '.join(SHARING_MODES)}.")
    for weighting in s.weightings:
        if weighting not in WEIGHTINGS:
            raise RecipeError(f"seq2seq.weightings has {weighting!r}; choose from {', '.join(WEIGHTINGS)}.")
    if "fixed" in s.weightings and sorted(s.task_weights or {}) != sorted(s.languages):
        raise RecipeError("seq2seq.weightings has fixed: give seq2seq.task_weights one weight per language.")
    if s.weighting_variant not in VARIANTS:
        raise RecipeError(
            f"seq2seq.weighting_variant must be one of {', '.join(VARIANTS)}, got {s.weighting_variant!r}."
        )
    for section, allowed in (("seq2seq", ("exact_match", "chrf", "bleu")), ("gan", ("fid", "kid"))):
        metrics = getattr(config, section).delta_p_metrics
        if not metrics or any(m not in allowed for m in metrics):
            raise RecipeError(f"{section}.delta_p_metrics must be some of {', '.join(allowed)}, got {metrics}.")
    if len(g.tasks) < 2:
        raise RecipeError(f"gan.tasks must name two or more digit groups, got {g.tasks}.")
    if g.new_task in g.tasks or g.new_task_init_from not in g.tasks:
        raise RecipeError(
            f"gan.new_task must be a new name and gan.new_task_init_from one of gan.tasks ({', '.join(g.tasks)})."
        )
    num_classes = g.model.get("num_classes") or 10
    for task, classes in {**g.tasks, g.new_task: g.new_task_classes}.items():
        if not classes or any(not isinstance(c, int) or not 0 <= c < num_classes for c in classes):
            raise RecipeError(f"gan task {task!r} must list digit classes from 0 to {num_classes - 1}, got {classes}.")
    if not g.shared_blocks:
        raise RecipeError("gan.shared_blocks must list at least one value (an int, or null for a shared generator).")
    counts = (
        ("seq2seq.steps", s.steps),
        ("seq2seq.multitask_steps", s.multitask_steps),
        ("seq2seq.batch_size", s.batch_size),
        ("seq2seq.multitask_batch_size", multitask_batch(s, len(s.languages))),
        ("gan.batch_size", g.batch_size),
        ("gan.multitask_batch_size", multitask_batch(g, len(g.tasks))),
        ("gan.steps", g.steps),
        ("gan.multitask_steps", g.multitask_steps),
        ("gan.add_task_steps", g.add_task_steps),
        ("workers", config.workers),
        ("threads_per_worker", config.threads_per_worker),
    )
    for name, value in counts:
        if value < 1:
            raise RecipeError(f"{name} must be at least 1, got {value}.")


def multitask_batch(section, num_tasks: int) -> int:
    return section.multitask_batch_size or section.batch_size * num_tasks
