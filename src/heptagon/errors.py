"""The exception hierarchy. The CLI turns a :class:`HeptagonError` into one line on stderr
and exit status 2; anything else is a bug (exit 1)."""

from __future__ import annotations

from pathlib import Path


class HeptagonError(Exception):
    """A user error: bad input, configuration or option. The message names the culprit."""


class ConfigError(HeptagonError):
    """A configuration value or option is wrong. ``key`` is the dotted config key."""

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


#: files whose named parts are keys (JSON objects, array archives, checkpoints), not branches
_KEYED_SUFFIXES = frozenset({".json", ".jsonl", ".npz", ".pt", ".yaml", ".yml"})


class DataError(HeptagonError):
    """Input data is missing or malformed. Names the file and, where known, the branch
    (of a ROOT / Parquet / HDF5 file) or key (of a JSON file, an ``.npz`` archive or a
    checkpoint)."""

    def __init__(
        self, message: str, file: str | Path | None = None, key: str | None = None
    ) -> None:
        self.file = None if file is None else str(file)
        self.key = key
        kind = "key" if file is not None and Path(file).suffix in _KEYED_SUFFIXES else "branch"
        where = ", ".join(part for part in (self.file, f"{kind} '{key}'" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ModelError(HeptagonError):
    """A model cannot be built or loaded as requested."""


class ExportError(HeptagonError):
    """Export failed a check (ONNX validity, ONNX Runtime vs PyTorch parity)."""


class Interrupted(BaseException):
    """The run was interrupted (Ctrl-C, SIGTERM) and stopped cleanly. The message says what
    was kept and how to resume; the CLI prints it on one line and exits with status 130.

    A :class:`BaseException`, like the :class:`KeyboardInterrupt` it replaces, so that no
    ``except Exception`` swallows it."""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s text (or its type's name when it has none): a library's
    error, cut to fit the one line a user error prints."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
