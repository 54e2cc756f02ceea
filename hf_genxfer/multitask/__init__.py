"""Multi-task training for GANs and Seq2Seq models: one module per concern.

- `mixing`: which task each batch (or example) comes from: round-robin, examples-proportional with a cap, temperature;
  seeded and resumable from the batch number alone.
- `weighting`: how per-task losses become one update: equal, fixed, uncertainty (Kendall et al.), GradNorm, PCGrad.
"""

from .mixing import MIXING_STRATEGIES, TaskMixer, proportional_rates, round_robin_rates, temperature_rates
from .weighting import (
    LOSS_WEIGHTINGS,
    EqualWeighting,
    FixedWeighting,
    GradNorm,
    LossWeighting,
    PCGrad,
    UncertaintyWeighting,
    build_loss_weighting,
    project_conflicting_gradients,
)

__all__ = [
    # mixing
    "MIXING_STRATEGIES",
    "TaskMixer",
    "proportional_rates",
    "round_robin_rates",
    "temperature_rates",
    # weighting
    "LOSS_WEIGHTINGS",
    "EqualWeighting",
    "FixedWeighting",
    "GradNorm",
    "LossWeighting",
    "PCGrad",
    "UncertaintyWeighting",
    "build_loss_weighting",
    "project_conflicting_gradients",
]
