"""Errors the engine raises for the CLI/TUI to show as a clear message (never a traceback)."""


class LocaltuneError(Exception):
    """A user-facing problem: bad input, missing file, wrong combination."""


class DataError(LocaltuneError):
    """A dataset that cannot be used (every row bad, unknown format, unreadable file)."""


class ModelError(LocaltuneError):
    """A model that cannot be resolved, downloaded, imported or loaded."""


class RunError(LocaltuneError):
    """A run directory problem: locked, incompatible resume, missing checkpoint."""


class StorageError(LocaltuneError):
    """A file could not be written or read because of the disk: full, read-only, no permission."""


class CorruptFileError(LocaltuneError):
    """A file localtune needs exists but is truncated or not what its name says (weights, state)."""
