"""The error classes of autogan_tf: one base class that every binary turns into one line.

Every error the library raises for bad input or a run that cannot go on derives from
`AutoGANError`; its message names the problem and the fix. The binaries catch `AutoGANError`,
print `<binary>: error: <message>` on stderr and exit with status 1 (usage errors: status 2).
Errors that are also misuse of a value (`ConfigError`, `ArchitectureError`, ...) derive from
`ValueError` too, so code that catches `ValueError` keeps working.
"""

from __future__ import annotations

__all__ = [
    "AutoGANError",
    "ConfigError",
    "ArchitectureError",
    "DatasetError",
    "ClassifierError",
    "StatsError",
    "RunDirError",
    "CheckpointError",
    "NonFiniteError",
    "TrainError",
    "SearchError",
    "ExportError",
    "EvaluationError",
]


class AutoGANError(Exception):
    """Base class: a problem with the user's input or run, with what to do about it."""


class ConfigError(AutoGANError, ValueError):
    """A configuration value out of range, or a resume with a different configuration."""


class ArchitectureError(ConfigError):
    """An architecture that is not a member of the search space."""


class DatasetError(AutoGANError, ValueError):
    """An unknown, missing or malformed dataset."""


class ClassifierError(AutoGANError, ValueError):
    """A classifier that cannot be loaded or does not have the IS/FID interface."""


class StatsError(AutoGANError, ValueError):
    """A statistics file that is missing, malformed or made with another classifier."""


class RunDirError(AutoGANError):
    """A run directory that is locked by another process, unwritable or of another run."""


class CheckpointError(AutoGANError):
    """A missing, corrupt or mismatched checkpoint."""


class NonFiniteError(AutoGANError):
    """Losses, weights or images that are NaN or infinite."""


class TrainError(AutoGANError):
    """A training run that cannot start or continue."""


class SearchError(AutoGANError):
    """A search that cannot start or continue."""


class ExportError(AutoGANError):
    """An export that cannot be written, or an exported model that cannot be read."""


class EvaluationError(AutoGANError, ValueError):
    """Inputs that cannot be evaluated (missing files, wrong shapes or ranges)."""
