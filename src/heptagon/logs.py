"""Logging: one ``heptagon.<stage>`` logger per stage, configured by the command line only.

The library logs a line per epoch (train), per shard (generate), per file (predict) and
per stage (demo, evaluate, publish) through :func:`get_logger` and never configures
logging itself: a program using heptagon decides where the records go. The ``heptagon``
command calls :func:`configure` once: INFO and up on stderr (``--quiet``: warnings and
errors only; ``--verbose``: debug too), as ``HH:MM:SS heptagon.train: ...`` lines when
stderr is not a terminal (a batch job's log), through rich beside the progress bars when
it is; and with ``--log-file`` every record (INFO and up, debug with ``--verbose``,
whatever ``--quiet`` says) also goes to that file with a full timestamp.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rich import get_console
from rich.logging import RichHandler

from heptagon.errors import DataError

__all__ = ["ROOT_LOGGER", "configure", "get_logger"]

#: the parent of every heptagon logger
ROOT_LOGGER = "heptagon"

_STDERR_FORMAT = logging.Formatter("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
_FILE_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def get_logger(stage: str) -> logging.Logger:
    """The logger of a stage: ``heptagon.<stage>`` (``train``, ``generate``, ...)."""
    return logging.getLogger(f"{ROOT_LOGGER}.{stage}")


def configure(level: int = logging.INFO, log_file: Path | None = None) -> None:
    """Send heptagon's records of ``level`` and up to stderr and, with ``log_file``, the
    records of INFO and up (``level`` and up if lower) to that file (appended), replacing
    any earlier set-up. Raises :class:`DataError` naming a log file that cannot be opened
    for writing."""
    logger = logging.getLogger(ROOT_LOGGER)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = []
    stderr: logging.Handler
    if sys.stderr.isatty():  # the global console: the one rich's progress bars draw on
        stderr = RichHandler(console=get_console(), show_path=False, log_time_format="%H:%M:%S")
        stderr.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(_STDERR_FORMAT)
    stderr.setLevel(level)
    handlers.append(stderr)
    if log_file is not None:
        try:
            file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as err:
            raise DataError(f"cannot write the log file ({err.strerror})", log_file) from None
        file.setFormatter(_FILE_FORMAT)
        file.setLevel(min(level, logging.INFO))
        handlers.append(file)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(min(h.level for h in handlers))
    logger.propagate = False
