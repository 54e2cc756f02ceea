"""The fields of `genxfer bench speed`: one section per measured case, the full-mode defaults and the quick overrides.

Every field can be changed with `--set section.field=value` (e.g. `--set gan_64_rgb.batch_size=16`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import RecipeError
from ..core import build_bench_config

# 496 glyph images (4 fonts, 2 renderings of each of the 62 characters): enough to hold out every class once.
GLYPH_DATA = {
    "dataset": "glyphs",
    "fonts": ["DejaVuSans", "DejaVuSerif", "cmr10", "STIXGeneral-Bold"],
    "renderings_per_glyph": 2,
}


@dataclass
class GANCase:
    """GAN training images/s: our loop against a plain PyTorch loop (same modules, losses, R1 schedule, Adam)."""

    enabled: bool = True
    model: dict = field(default_factory=dict)  # GANConfig fields
    data: dict = field(default_factory=lambda: {"dataset": "digits"})  # the recipe's data section
    batch_size: int = 64
    steps: int = 40  # optimizer steps per timed repetition
    options: dict = field(default_factory=dict)  # training fields of the "ours with options" variant ({}: none)


@dataclass
class Seq2SeqCase:
    """Seq2Seq training non-padding target tokens/s: our loop against Seq2SeqTrainer and a plain loop; generation."""

    enabled: bool = True
    backbone: dict = field(default_factory=dict)  # overrides of the default small BART
    train_size: int = 4000
    batch_size: int = 64
    steps: int = 20
    options: dict = field(default_factory=lambda: {"group_by_length": True})
    generation: bool = True  # also time generation (greedy and 4-beam, batch 1 and 32) and multi-task routing
    compile_generation: bool = True  # greedy decoding also with generate(compile=True) (its warm-up compiles)
    generation_inputs: int = 32  # test sources generated per repetition (batch 1: this many calls)
    new_tokens: int = 24  # tokens generated per input (min = max, so every method decodes the same number)


@dataclass
class SpeedBenchConfig:
    repetitions: int = 15  # interleaved repetitions per case; medians are reported
    warmup_steps: int = 5
    threads: int = 0  # torch threads (0: every core)
    measure_memory: bool = True  # peak memory of each method, each in a fresh process
    memory_steps: int = 10
    compile: bool = False  # also time `training.compile` (slow to compile on small CPUs)
    gan_demo: GANCase = field(
        default_factory=lambda: GANCase(
            model={
                "image_size": 8,
                "image_channels": 1,
                "latent_size": 64,
                "base_width": 32,
                "layers_per_block": 2,
                "num_classes": 10,
            },
            steps=60,
            options={"compile": True},
        )
    )
    gan_32: GANCase = field(
        default_factory=lambda: GANCase(
            model={
                "image_size": 32,
                "image_channels": 1,
                "latent_size": 64,
                "base_width": 16,
                "max_width": 128,
                "layers_per_block": 1,
                "num_classes": 62,
                "style_mapping_layers": 2,
                "auxiliary_classifier": True,
            },
            data=dict(GLYPH_DATA),
            batch_size=32,
            steps=20,
            options={"channels_last": True},
        )
    )
    gan_64_rgb: GANCase = field(
        default_factory=lambda: GANCase(
            model={
                "image_size": 64,
                "image_channels": 3,
                "latent_size": 128,
                "base_width": 16,
                "max_width": 128,
                "layers_per_block": 1,
            },
            data=dict(GLYPH_DATA),
            batch_size=32,
            steps=8,
            options={"channels_last": True},
        )
    )
    seq2seq_demo: Seq2SeqCase = field(
        default_factory=lambda: Seq2SeqCase(backbone={"d_model": 128, "encoder_layers": 2, "decoder_layers": 2})
    )
    seq2seq_large: Seq2SeqCase = field(
        default_factory=lambda: Seq2SeqCase(
            backbone={
                "d_model": 256,
                "encoder_layers": 4,
                "decoder_layers": 4,
                "encoder_ffn_dim": 1024,
                "decoder_ffn_dim": 1024,
                "encoder_attention_heads": 4,
                "decoder_attention_heads": 4,
            },
            steps=8,
            generation=False,
        )
    )


# Many short repetitions rather than a few long ones: on a shared machine the noise comes in bursts of seconds, and
# finely interleaved repetitions spread each burst over every method.
QUICK_OVERRIDES = [
    "repetitions=11",
    "gan_demo.steps=12",
    "gan_32.steps=5",
    "gan_64_rgb.steps=2",
    "seq2seq_demo.steps=5",
    "seq2seq_large.steps=3",
    "seq2seq_demo.generation_inputs=12",
    "memory_steps=5",
]

GAN_CASES = ("gan_demo", "gan_32", "gan_64_rgb")
SEQ2SEQ_CASES = ("seq2seq_demo", "seq2seq_large")


def resolve_config(quick: bool = False, overrides: list[str] | None = None) -> SpeedBenchConfig:
    """The bench's fields: the defaults, then the quick-mode overrides, then the user's `--set` ones."""
    return build_bench_config(SpeedBenchConfig, QUICK_OVERRIDES, quick, overrides, _check)


def _check(config: SpeedBenchConfig) -> None:
    if config.repetitions < 1 or config.warmup_steps < 0:
        raise RecipeError("repetitions must be at least 1 and warmup_steps at least 0.")
    for name in GAN_CASES + SEQ2SEQ_CASES:
        case = getattr(config, name)
        if case.steps < 1 or case.batch_size < 1:
            raise RecipeError(f"{name}.steps and {name}.batch_size must be at least 1.")
