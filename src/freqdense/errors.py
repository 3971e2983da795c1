"""Exception types. Every message names the offending file, key or tensor and says how to fix it."""

from __future__ import annotations

__all__ = [
    "FreqdenseError",
    "ConfigError",
    "ShapeError",
    "UnknownNameError",
    "DataError",
    "CheckpointError",
    "ReportError",
    "NonFiniteError",
    "DiskFullError",
    "TrainingDivergedError",
]


class FreqdenseError(Exception):
    """Base class of all freqdense errors."""


class ConfigError(FreqdenseError, ValueError):
    """An experiment config or a constructor keyword is invalid."""


class ShapeError(FreqdenseError, ValueError):
    """A tensor has the wrong rank, size or dtype at a public entry point."""


class UnknownNameError(FreqdenseError, KeyError):
    """A registry name (model, dataset, task, ...) does not exist."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class DataError(FreqdenseError, ValueError):
    """A dataset file is missing, unreadable or holds invalid values."""


class CheckpointError(FreqdenseError, RuntimeError):
    """A checkpoint is missing, corrupt or does not match the model."""


class ReportError(FreqdenseError, ValueError):
    """A directory given to ``freqdense report`` is missing, of an unknown kind or holds unreadable files."""


class NonFiniteError(DataError):
    """A tensor (input, weight or prediction) holds NaN or inf; the message names the file, sample or tensor."""


class DiskFullError(FreqdenseError, OSError):
    """A run file could not be written because the disk (or quota) is full; says how much space is needed."""


class TrainingDivergedError(FreqdenseError, ArithmeticError):
    """The training loss became non-finite or exploded; names the step and every loss term."""
