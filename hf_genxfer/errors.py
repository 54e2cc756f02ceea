"""The project's error types: each carries one sentence that names the problem and the fix.

`genxfer` prints the sentence and exits with status 2 for every `GenxferError` but a diverged run (status 3); code
that calls the library can catch `GenxferError` for all of them. The ValueError/OSError bases keep older
`except ValueError` callers working.
"""

from __future__ import annotations


class GenxferError(Exception):
    """A problem the user can fix (bad input, a damaged file, a run that diverged), with a one-sentence message."""

    exit_status = 2


class RecipeError(GenxferError, ValueError):
    """A recipe that cannot run: an unknown key, a wrong type, a value out of range, a folder that cannot be used."""


class DataError(GenxferError, ValueError):
    """A corpus that cannot be read or does not hold what the recipe needs."""


class ModelFolderError(GenxferError, OSError):
    """A model folder or Hub id that cannot be loaded: missing, damaged, of another family, or pickle-only."""


class CheckpointError(GenxferError):
    """A checkpoint that cannot be resumed: missing or damaged files, another run's, or refused content."""


class TrainingDiverged(GenxferError):
    """A loss, a gradient norm or the weights became NaN or infinite; the last good checkpoint is kept."""

    exit_status = 3


__all__ = ["CheckpointError", "DataError", "GenxferError", "ModelFolderError", "RecipeError", "TrainingDiverged"]
