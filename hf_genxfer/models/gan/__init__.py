"""The GAN family: config, models and the diffusers sampling pipeline."""

from transformers import AutoConfig, AutoModel

from .configuration_gan import ADVERSARIAL_LOSSES, GANConfig
from .modeling_gan import (
    GANDiscriminator,
    GANDiscriminatorHead,
    GANDiscriminatorOutput,
    GANGenerator,
    GANGeneratorHead,
    GANGeneratorOutput,
    GANModel,
    GANPreTrainedModel,
)
from .pipeline_gan import GANPipeline, GANPipelineOutput, register_with_diffusers

AutoConfig.register(GANConfig.model_type, GANConfig, exist_ok=True)
AutoModel.register(GANConfig, GANModel, exist_ok=True)
register_with_diffusers()

__all__ = [
    "ADVERSARIAL_LOSSES",
    "GANConfig",
    "GANDiscriminator",
    "GANDiscriminatorHead",
    "GANDiscriminatorOutput",
    "GANGenerator",
    "GANGeneratorHead",
    "GANGeneratorOutput",
    "GANModel",
    "GANPipeline",
    "GANPipelineOutput",
    "GANPreTrainedModel",
]
