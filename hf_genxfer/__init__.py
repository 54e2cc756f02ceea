"""hf_genxfer: transfer learning and multi-task learning for generative models, as ordinary Hugging Face models.

Importing the package registers its configs and models with the transformers Auto classes.
"""

__version__ = "0.1.0"

from .models.gan import (
    GANConfig,
    GANDiscriminator,
    GANGenerator,
    GANModel,
    GANPipeline,
    GANPipelineOutput,
)
from .models.seq2seq import Seq2SeqConfig, Seq2SeqModel, default_backbone_config

__all__ = [
    "GANConfig",
    "GANDiscriminator",
    "GANGenerator",
    "GANModel",
    "GANPipeline",
    "GANPipelineOutput",
    "Seq2SeqConfig",
    "Seq2SeqModel",
    "default_backbone_config",
]
