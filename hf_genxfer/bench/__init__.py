"""The benchmark protocols behind `genxfer bench`, as library code: results as JSON plus PNG plots, never part of
the test suite. `core` is what they share; each protocol is a package split into its fields (`config`), its jobs,
how their results are assembled, and its report (targets, plots, printout).

- `transfer`: few-shot target quality of every transfer strategy against scratch and the unadapted source model.
- `multitask`: one multi-task model against one model per task.
"""

from .transfer import (
    QUICK_OVERRIDES,
    TransferBenchConfig,
    evaluate_targets,
    print_summary,
    resolve_config,
    run_transfer_bench,
    write_plots,
)

__all__ = [
    "QUICK_OVERRIDES",
    "TransferBenchConfig",
    "evaluate_targets",
    "print_summary",
    "resolve_config",
    "run_transfer_bench",
    "write_plots",
]
