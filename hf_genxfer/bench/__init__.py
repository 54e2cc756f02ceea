"""The benchmark protocols behind `genxfer bench`: results as JSON plus PNG plots, never part of the test suite.

- `transfer`: few-shot target quality of every transfer strategy against scratch and the unadapted source model.
"""

from .config import QUICK_OVERRIDES, TransferBenchConfig, resolve_config
from .transfer import evaluate_targets, print_summary, run_transfer_bench, write_plots

__all__ = [
    "QUICK_OVERRIDES",
    "TransferBenchConfig",
    "evaluate_targets",
    "print_summary",
    "resolve_config",
    "run_transfer_bench",
    "write_plots",
]
