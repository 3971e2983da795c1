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
