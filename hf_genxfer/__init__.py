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

__all__ = [
    "GANConfig",
    "GANDiscriminator",
    "GANGenerator",
    "GANModel",
    "GANPipeline",
    "GANPipelineOutput",
]
