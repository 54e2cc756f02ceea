"""Transfer strategies for GANs and Seq2Seq models: one module per family, each changing what is trained or adding a
loss term; the training loop owns backward, stepping, syncing and saving.

- `parameters`: copy a source model's weights into a target (across depth, class or vocabulary changes) with a report.
- `freezing`: freeze by name pattern, FreezeD, encoder / embeddings / lower decoder layers; layer-wise learning rates.
- `adapters`: PEFT LoRA on the GAN generator or a Seq2Seq backbone; save, load, switch and merge named adapters.
- `regularisers`: L2-SP and EWC penalties (with Fisher estimation) that keep weights near the source ones.
- `augment`: DiffAugment for few-shot GANs.
- `naming`: the glob convention all of them use to pick parameters (`fnmatch` on full names).
"""

from .adapters import (
    GAN_LORA_TARGETS,
    SEQ2SEQ_LORA_TARGETS,
    apply_lora,
    find_lora_targets,
    load_lora,
    lora_config_for,
    loraplus_fast_parameters,
    merged_copy,
    trainable_fraction,
)
from .augment import DIFF_AUGMENT_POLICIES, DiffAugment, diff_augment
from .freezing import (
    count_parameters,
    freeze,
    freeze_decoder_layers,
    freeze_discriminator_blocks,
    freeze_embeddings,
    freeze_encoder,
    freeze_generator_blocks,
    layerwise_learning_rates,
)
from .naming import decoder_patterns, encoder_patterns, generator_patterns, matches, module_patterns
from .parameters import STATUSES, TransferEntry, TransferReport, transfer_parameters
from .regularisers import EWC, L2SP, estimate_fisher, load_fisher, save_fisher

__all__ = [
    "DIFF_AUGMENT_POLICIES",
    "EWC",
    "GAN_LORA_TARGETS",
    "L2SP",
    "SEQ2SEQ_LORA_TARGETS",
    "STATUSES",
    "DiffAugment",
    "TransferEntry",
    "TransferReport",
    "apply_lora",
    "count_parameters",
    "decoder_patterns",
    "diff_augment",
    "encoder_patterns",
    "estimate_fisher",
    "find_lora_targets",
    "freeze",
    "freeze_decoder_layers",
    "freeze_discriminator_blocks",
    "freeze_generator_blocks",
    "freeze_embeddings",
    "freeze_encoder",
    "generator_patterns",
    "layerwise_learning_rates",
    "load_fisher",
    "load_lora",
    "lora_config_for",
    "loraplus_fast_parameters",
    "matches",
    "merged_copy",
    "module_patterns",
    "save_fisher",
    "trainable_fraction",
    "transfer_parameters",
]
