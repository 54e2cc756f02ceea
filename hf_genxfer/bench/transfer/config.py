"""The fields of `genxfer bench transfer`: one dataclass per scenario, the full-mode defaults, and the quick overrides.

Every field can be changed with `--set section.field=value` (e.g. `--set seq2seq.target_language=de`), so the same
bench runs on other splits, fonts and languages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import RecipeError
from ...recipes import check_scheduler
from ..core import (
    build_bench_config,
)

# A GAN strategy is "source", "scratch", or a base strategy with optional "+extra" parts, e.g. "style+cdc".
GAN_STRATEGY_BASES = ("full", "freezed", "lora", "l2sp", "ewc", "style", "latent")
GAN_STRATEGY_EXTRAS = ("diffaugment", "cdc", "latent", "bias")
GAN_STRATEGIES = (
    "source",
    "scratch",
    "full",
    "freezed",
    "lora",
    "l2sp",
    "ewc",
)
# Glyphs at 32x32 run at a third of 16x16's speed: L2-SP, EWC, FreezeD and LoRA (which drifted furthest at 16x16,
# 2026-12-02 full run; LoRA's target is the digits') are left out, and the strategies of few-shot font generation
# come in: full fine-tuning with the cross-domain correspondence loss (CDC, Ojha et al. 2021: the source's pairwise
# similarities kept over every character, so the 52 unseen ones keep their content while the style moves),
# style-only (late blocks) and the latent's learned affine (MineGAN's idea). Style-only + CDC and style-only + latent
# lost to these in the 2026-12-02 runs and are cut to fit the hour. No DiffAugment: at 32x32 with ten shots it made
# every strategy's FID climb within 200 steps (trial runs, README). "latent+bias" also trains the modulations' biases
# (a per-channel scale and shift of every layer, the same for all characters: 480 numbers at 32x32), which carried the
# style furthest while keeping content in the 2026-12-02 trials; "+cdc" keeps the source's similarities beside it.
# Style-only lost content on both fonts of the 2026-12-02 runs (43-50%) and makes room for them.
GLYPH_STRATEGIES = ("source", "scratch", "full", "full+cdc", "latent", "latent+bias", "latent+bias+cdc")
# The full run's defaults are cut to fit the hour on 2 cores (the 2026-12-03 run of every strategy above took 73 min on
# a 2-core AMD EPYC: 8,746 s of jobs). Each cut strategy still runs with `--set SECTION.strategies=[...]`, and its last
# results are in benchmarks/transfer_all_strategies.json. Glyphs: "latent" and "latent+bias" are the ablations of
# "latent+bias+cdc" (latent alone: the worst content FID, 57.8, above scratch's 29.2; latent+bias: 68% unseen content,
# under the 70% floor, and behind latent+bias+cdc on both FIDs); CDC's share stays measured by full against full+cdc.
GLYPH_DEFAULT_STRATEGIES = ("source", "scratch", "full", "full+cdc", "latent+bias+cdc")
# Digits: FreezeD, the one strategy behind scratch at 300 steps (1.02x its FID; the only digits strategy with the
# source discriminator); the regularisers (L2-SP, EWC) stay, as they led the digits on the 2026-12-02 machine.
GAN_DEFAULT_STRATEGIES = ("source", "scratch", "full", "lora", "l2sp", "ewc")


def check_gan_strategy(strategy: str, where: str) -> None:
    """A GAN strategy name is source, scratch or a base from GAN_STRATEGY_BASES with distinct extras."""
    if strategy in ("source", "scratch"):
        return
    base, *extras = strategy.split("+")
    if (
        base not in GAN_STRATEGY_BASES
        or any(e not in GAN_STRATEGY_EXTRAS for e in extras)
        or len(set(extras)) < len(extras)
        or ("bias" in extras and base != "latent")
    ):
        raise RecipeError(
            f"{where} has {strategy!r}; use source, scratch, or one of {', '.join(GAN_STRATEGY_BASES)} followed by "
            f"optional distinct +extras from {', '.join(GAN_STRATEGY_EXTRAS)} (e.g. style+cdc; +bias only after latent, "
            "every other base trains the biases already)."
        )


# Adapters start at zero and move slowly at the GAN's 2e-4; None: the scenario's learning_rate.
LORA_LEARNING_RATE = 0.001


# Glyphs keep the source discriminator (it knows the 62 characters in 20 fonts; a fresh one wrecked the content of
# the unseen characters in the trial runs); digits, new classes, restart it.
GLYPHS_FRESH_DISCRIMINATOR = False


SEQ2SEQ_STRATEGIES = ("source", "scratch", "full", "frozen_encoder", "lora", "l2sp", "ewc")
# Seq2Seq's defaults, cut to fit the hour (see GLYPH_DEFAULT_STRATEGIES): a frozen encoder, L2-SP and EWC all ended
# below both full fine-tuning and LoRA (chrF 81.7, 81.7, 83.5 against 84.3 and 87.6, 2026-12-03); the regularisers
# stay measured on digits.
SEQ2SEQ_DEFAULT_STRATEGIES = ("source", "scratch", "full", "lora")


@dataclass
class GANDigitsBench:
    """Few-shot new classes: pretrain on some digits, adapt to the others from a few images per class."""

    enabled: bool = True
    source_classes: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    target_classes: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 9])
    target_shots: int = 10  # training images per target class
    held_out_fraction: float = 0.5  # of the target classes' images, kept for FID/KID
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
    source_steps: int = 1500
    eval_steps: list[int] = field(default_factory=lambda: [100, 200, 300, 500, 750, 1000])  # the last is the budget
    report_steps: list[int] = field(default_factory=lambda: [300, 1000])  # steps of the results table
    batch_size: int = 64
    learning_rate: float = 0.0002
    strategies: list[str] = field(default_factory=lambda: list(GAN_DEFAULT_STRATEGIES))
    freeze_discriminator_blocks: int = 1
    # Transfer the generator only (every strategy but FreezeD): a discriminator trained on other classes against the
    # source generator slows adaptation down; a fresh one co-evolves with the transferred generator (README).
    fresh_discriminator: bool = True
    lora_r: int = 4  # rank 4 keeps the generator's adapters under 10% of its parameters (rank 8: 12%)
    lora_alpha: int = 8
    # The generator's adapters: PEFT's DoRA at a constant 5e-4, its B matrices at 4x that (LoRA+), against a
    # discriminator at 6e-4. At 1e-3 plain LoRA drifted after 200-300 steps to 4x full fine-tuning's final FID; a
    # cosine decay held it at 1.5x on one machine and 2.8-3.1x on another; DoRA with a constant rate and a
    # discriminator at 4e-4-1e-3 ended at 1.00-1.15x and 1.35-1.49x in seven settings, its capacity was not the limit
    # (rank 8 or a third of the generator in full: 1.25-1.32x on 5-9 -> 0-4); LoRA+ starts it 5x faster and ended
    # at 1.00x and 1.19x, within 1.3x on both splits in three of five ratio/rate settings (2026-12-02/07 sweeps,
    # README "LoRA on digits").
    lora_learning_rate: float | None = 0.0005
    lora_modules_to_save: list[str] | None = None  # trained in full next to the adapter (PEFT modules_to_save)
    lora_use_dora: bool = True  # PEFT's DoRA in place of plain LoRA
    loraplus_lr_ratio: float | None = 4.0  # LoRA+: the adapters' B matrices at this multiple of the rate
    # Transfer runs (not scratch): a transformers scheduler name for every rate, spanning the whole run (the last of
    # eval_steps); LoRA runs take lora_lr_scheduler when it is set
    lr_scheduler: str = "constant"
    lora_lr_scheduler: str | None = None
    l2sp_weight: float = 0.01
    ewc_weight: float = 10.0
    diffaugment: str = "color,translation,cutout"
    style_frozen_blocks: int = 1  # "style": the generator's lowest blocks kept frozen with its embeddings/mappings
    cdc_weight: float = 1000.0  # "+cdc": weight of the cross-domain correspondence loss (Ojha et al.'s value)
    cdc_batch_size: int = 16
    num_samples: int = 1000  # generated images per FID/KID evaluation
    ema_decay: float = 0.99  # few hundred steps: a shorter EMA than pretraining's 0.999
    # A LoRA sweep: each entry overrides some of LORA_SWEEP_FIELDS (lora_r, lora_alpha, lora_learning_rate,
    # lora_modules_to_save, lora_use_dora, loraplus_lr_ratio, lora_lr_scheduler, discriminator_learning_rate,
    # fresh_discriminator, ema_decay) and runs as one more LoRA strategy (over strategy_settings' "lora"); the results
    # are recorded beside the others.
    lora_sweep: list[dict] = field(default_factory=list)
    discriminator_learning_rate: float | None = 0.0006  # LoRA runs: the discriminator's rate (None: learning_rate)
    # Per strategy, fields of STRATEGY_SETTING_FIELDS that its run alone takes, e.g. {"full": {"learning_rate": 5e-4}}
    strategy_settings: dict[str, dict] = field(default_factory=dict)
    seed: int = 0


@dataclass
class GANGlyphsBench:
    """Few-shot new font: pretrain a character-conditional GAN on most fonts, adapt from a few characters of one."""

    enabled: bool = True
    target_font: str = "STIXGeneral-Regular"
    source_fonts: list[str] | None = None  # default: every available font except the target
    target_characters: str = "AEHRaegnr3"  # the characters of the target font the model sees
    target_shots: int = 1  # jittered images per seen character
    source_samples_per_glyph: int = 2
    eval_samples_per_glyph: int = 4  # held-out target images: every character of the target font, jittered
    # Style accuracy picks the font of each generated unseen glyph among these (the target is always one of them);
    # default: every font the shipped font classifier knows, i.e. the target against all the source fonts.
    style_candidate_fonts: list[str] | None = None
    model: dict = field(
        default_factory=lambda: {
            # 32x32, the glyph and font classifiers' size (at 16x16 they recognise half of the real glyphs); the
            # class reaches every layer and an auxiliary classifier teaches the 62 characters (README, "GAN
            # conditioning and losses"; trial runs in "Why the benches' fields are what they are").
            "image_size": 32,
            "image_channels": 1,
            "latent_size": 64,
            "base_width": 16,
            "max_width": 128,
            "layers_per_block": 1,
            "num_classes": 62,
            "style_mapping_layers": 2,
            "auxiliary_classifier": True,
        }
    )
    # Own-font content accuracy still rose at 3,000 steps (48% / 69% / 85% at 1,000 / 2,000 / 3,000): 5,000 steps with
    # channels_last (1.3x the default layout's speed on one thread) take 1.3x the time 3,000 took; the accuracy is
    # recorded every source_eval_every steps
    source_steps: int = 5000
    source_eval_every: int = 1000
    channels_last: bool = True  # every run of the scenario (training.channels_last)
    source_learning_rate: float | None = 0.001  # None: learning_rate
    source_mode_seeking_weight: float = 0.1  # MSGAN's term in the source run: one glyph per character otherwise
    mode_seeking_weight: float = 0.0  # in every transfer run
    eval_steps: list[int] = field(default_factory=lambda: [100, 200, 300, 500, 750, 1000])
    report_steps: list[int] = field(default_factory=lambda: [300, 1000])
    batch_size: int = 32
    learning_rate: float = 0.0002
    strategies: list[str] = field(default_factory=lambda: list(GLYPH_DEFAULT_STRATEGIES))
    freeze_discriminator_blocks: int = 1
    fresh_discriminator: bool = GLYPHS_FRESH_DISCRIMINATOR
    lora_r: int = 4  # rank 4 keeps the generator's adapters under 10% of its parameters (rank 8: 12%)
    lora_alpha: int = 8
    lora_learning_rate: float | None = LORA_LEARNING_RATE  # the generator's; the discriminator keeps learning_rate
    lora_modules_to_save: list[str] | None = None
    lora_use_dora: bool = False
    loraplus_lr_ratio: float | None = None
    lr_scheduler: str = "constant"
    lora_lr_scheduler: str | None = None
    l2sp_weight: float = 0.01
    ewc_weight: float = 10.0
    diffaugment: str = "color,translation,cutout"
    style_frozen_blocks: int = 2  # "style": 4x4 and 8x8 blocks, embeddings and mappings frozen (content)
    latent_learning_rate: float = 0.003  # "latent"/"+latent": the learned latent shift and scale (latent units;
    # 0.01 reached the target style by 300 steps and drifted past it by 500 in the trial runs)
    # "+bias": the generator's rate (its modulations' biases); D keeps learning_rate. 3e-3, not 1e-3: the style
    # moved furthest on DejaVuSerif-Italic with it (+30 points), at a cost in STIXGeneral-Regular's content (README)
    bias_learning_rate: float = 0.003
    cdc_weight: float = 1000.0
    cdc_batch_size: int = 16
    num_samples: int = 620
    ema_decay: float = 0.99
    lora_sweep: list[dict] = field(default_factory=list)
    discriminator_learning_rate: float | None = None
    # Per strategy, fields its run alone takes. Full fine-tuning with CDC at 5e-4 (generator and discriminator): the
    # correspondence loss holds the content, so the style can move faster than at the scenario's 2e-4 (STIXGeneral:
    # style FID 0.33x scratch's against 0.56x, content 94%; trial runs 2026-12-03, README)
    strategy_settings: dict[str, dict] = field(default_factory=lambda: {"full+cdc": {"learning_rate": 0.0005}})
    seed: int = 0


@dataclass
class Seq2SeqBench:
    """Low-resource new language: numbers to words, pretrained on one language, adapted to another from few pairs."""

    enabled: bool = True
    source_language: str = "en"
    target_language: str = "fr"
    high: int = 1_000_000  # numbers in [0, high)
    source_train_size: int = 20000
    target_train_size: int = 50
    validation_size: int = 100  # target pairs scored during training (the quality-vs-steps curve)
    test_size: int = 1000  # held-out target numbers of the final scores
    model: dict = field(
        default_factory=lambda: {
            "backbone": {
                "d_model": 128,
                "encoder_layers": 2,
                "decoder_layers": 2,
                "encoder_attention_heads": 4,
                "decoder_attention_heads": 4,
                "encoder_ffn_dim": 256,
                "decoder_ffn_dim": 256,
            }
        }
    )
    source_steps: int = 2000
    source_learning_rate: float = 0.001
    eval_every: int = 100  # validation chrF every k steps: the quality-vs-steps curve
    report_steps: list[int] = field(default_factory=lambda: [300, 1000])
    batch_size: int = 32
    learning_rate: float = 0.0005
    strategies: list[str] = field(default_factory=lambda: list(SEQ2SEQ_DEFAULT_STRATEGIES))
    lora_r: int = 8  # rank 8: about 8% of the parameters (rank 16: 17%)
    lora_alpha: int = 16
    lora_learning_rate: float = 0.002  # adapters start at zero and need a larger step than full fine-tuning
    l2sp_weight: float = 0.001
    ewc_weight: float = 1.0
    max_new_tokens: int = 96
    # 25 pairs was cut to fit the hour (GLYPH_DEFAULT_STRATEGIES): at 25 as at 50 LoRA led scratch by about 28 chrF
    # (2026-12-03), and 50 (the strategy table's size, reused), 200 and 1000 keep the gap closing and the crossover
    data_efficiency_sizes: list[int] = field(default_factory=lambda: [50, 200, 1000])
    data_efficiency_steps: int = 1000
    # A second target in another script (Cyrillic): the source tokenizer lacks its characters, so every transfer
    # strategy here extends the vocabulary (transfer.extend_vocabulary); scratch trains a tokenizer of its own.
    second_target_language: str | None = "ru"
    # full fine-tuning was cut to fit the hour: the second target's check is LoRA's against scratch
    second_target_strategies: list[str] = field(default_factory=lambda: ["source", "scratch", "lora"])
    seed: int = 0


def _reversed_digits() -> GANDigitsBench:
    """The digits scenario the other way round (5-9 -> 0-4), for full fine-tuning and LoRA."""
    return GANDigitsBench(
        source_classes=[5, 6, 7, 8, 9], target_classes=[0, 1, 2, 3, 4], strategies=["source", "full", "lora"]
    )


@dataclass
class TransferBenchConfig:
    gan_digits: GANDigitsBench = field(default_factory=GANDigitsBench)
    gan_digits_reversed: GANDigitsBench = field(default_factory=_reversed_digits)
    gan_glyphs: GANGlyphsBench = field(default_factory=GANGlyphsBench)
    seq2seq: Seq2SeqBench = field(default_factory=Seq2SeqBench)
    workers: int = 2  # scenarios run side by side in this many processes
    threads_per_worker: int = 1  # torch threads in each (two 1-thread processes beat one 2-thread one on 2 cores)


# Quick mode: the same protocol with shorter schedules and smaller evaluations, to fit in 15 minutes on 2 cores.
QUICK_OVERRIDES = [
    "gan_digits.source_steps=600",
    "gan_digits.eval_steps=[100,200,300]",
    "gan_digits.report_steps=[100,300]",
    "gan_digits.num_samples=500",
    "gan_glyphs.source_steps=400",
    "gan_glyphs.source_eval_every=200",
    "gan_glyphs.source_samples_per_glyph=1",
    "gan_glyphs.eval_samples_per_glyph=2",
    "gan_glyphs.eval_steps=[50,100,150]",
    "gan_glyphs.report_steps=[50,150]",
    "gan_digits_reversed.enabled=false",
    "gan_glyphs.model.image_size=16",
    "gan_glyphs.style_frozen_blocks=1",
    "gan_glyphs.strategies=[source,scratch,full,full+cdc,latent,latent+bias]",
    "gan_glyphs.num_samples=310",
    "seq2seq.source_train_size=8000",
    "seq2seq.source_steps=800",
    "seq2seq.validation_size=100",
    "seq2seq.test_size=300",
    "seq2seq.eval_every=100",
    "seq2seq.report_steps=[100,300]",
    "seq2seq.data_efficiency_sizes=[25,200]",
    "seq2seq.data_efficiency_steps=300",
    "seq2seq.second_target_strategies=[source,scratch,lora]",
]


LORA_SWEEP_FIELDS = (
    "lora_r",
    "lora_alpha",
    "lora_learning_rate",
    "lora_modules_to_save",
    "lora_use_dora",
    "loraplus_lr_ratio",
    "lora_lr_scheduler",
    "discriminator_learning_rate",
    "fresh_discriminator",
    "ema_decay",
)


# What `strategy_settings` may set for one strategy: its rates, schedule and regulariser weights (never the batch size,
# steps or evaluation, which every strategy shares so that they compare).
STRATEGY_SETTING_FIELDS = (
    *LORA_SWEEP_FIELDS,
    "learning_rate",
    "lr_scheduler",
    "latent_learning_rate",
    "bias_learning_rate",
    "l2sp_weight",
    "ewc_weight",
    "cdc_weight",
    "cdc_batch_size",
    "freeze_discriminator_blocks",
    "style_frozen_blocks",
    "mode_seeking_weight",
    "diffaugment",
)


def resolve_config(quick: bool = False, overrides: list[str] | None = None) -> TransferBenchConfig:
    """The bench's fields: the defaults, then the quick-mode overrides, then the user's `--set` ones."""
    return build_bench_config(TransferBenchConfig, QUICK_OVERRIDES, quick, overrides, _check)


def _check(config: TransferBenchConfig) -> None:
    sections = ("gan_digits", "gan_digits_reversed", "gan_glyphs", "seq2seq")
    for name in sections:
        section = getattr(config, name)
        for strategy in section.strategies:
            if name.startswith("gan"):
                check_gan_strategy(strategy, f"{name}.strategies")
            elif strategy not in SEQ2SEQ_STRATEGIES:
                raise RecipeError(f"{name}.strategies has {strategy!r}; choose from {', '.join(SEQ2SEQ_STRATEGIES)}.")
        for entry in getattr(section, "lora_sweep", []):
            unknown = [key for key in entry if key not in LORA_SWEEP_FIELDS]
            if not isinstance(entry, dict) or unknown:
                raise RecipeError(f"{name}.lora_sweep entries override {', '.join(LORA_SWEEP_FIELDS)}; got {entry!r}.")
        for strategy, settings in getattr(section, "strategy_settings", {}).items():
            _check_strategy_settings(name, section, strategy, settings)
        for key in ("lr_scheduler", "lora_lr_scheduler"):
            if getattr(section, key, None) is not None:
                check_scheduler(getattr(section, key), f"{name}.{key}")
        steps = getattr(section, "eval_steps", section.report_steps)
        if not steps or any(s < 1 for s in steps) or sorted(set(steps)) != list(steps):
            raise RecipeError(f"{name}.eval_steps and report_steps must be increasing positive counts, got {steps}.")
        missing = [s for s in section.report_steps if s not in steps]
        if missing:
            raise RecipeError(f"{name}.report_steps {missing} must also be in {name}.eval_steps.")
    for strategy in config.seq2seq.second_target_strategies:
        if strategy not in SEQ2SEQ_STRATEGIES:
            raise RecipeError(
                f"seq2seq.second_target_strategies has {strategy!r}; choose from {', '.join(SEQ2SEQ_STRATEGIES)}."
            )
    if config.seq2seq.eval_every < 1:
        raise RecipeError(f"seq2seq.eval_every must be at least 1, got {config.seq2seq.eval_every}.")
    if config.gan_glyphs.source_eval_every < 1:
        raise RecipeError(
            f"gan_glyphs.source_eval_every must be at least 1, got {config.gan_glyphs.source_eval_every}."
        )
    if config.workers < 1 or config.threads_per_worker < 1:
        raise RecipeError("workers and threads_per_worker must be at least 1.")
    glyphs = config.gan_glyphs
    if len(set(glyphs.target_characters)) != len(glyphs.target_characters) or not glyphs.target_characters:
        raise RecipeError("gan_glyphs.target_characters must be distinct characters, e.g. AEHRaegnr3.")


def _check_strategy_settings(name: str, section, strategy: str, settings) -> None:
    """One entry of a GAN section's `strategy_settings`: a trained strategy's name, then fields it may set."""
    where = f"{name}.strategy_settings"
    if strategy == "source":
        raise RecipeError(f"{where} has settings for 'source', which is not trained; remove them.")
    check_gan_strategy(strategy, where)
    allowed = [key for key in STRATEGY_SETTING_FIELDS if hasattr(section, key)]
    unknown = [key for key in settings if key not in allowed] if isinstance(settings, dict) else None
    if unknown is None or unknown:
        raise RecipeError(
            f"{where}[{strategy!r}] sets {unknown or settings!r}; a strategy's settings may set {', '.join(allowed)}."
        )
    for key in ("lr_scheduler", "lora_lr_scheduler"):
        if settings.get(key) is not None:
            check_scheduler(settings[key], f"{where}[{strategy!r}].{key}")
