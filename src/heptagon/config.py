"""Typed configuration: pydantic models (``extra="forbid"``) validated with key-precise errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from heptagon.errors import ConfigError

__all__ = ["load_yaml", "validate"]

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, *, source: str | None = None) -> M:
    """Validate ``data`` into ``model``; the first problem becomes a :class:`ConfigError`
    naming its dotted key (and ``source``, the file, where given)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or None
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(f"{source}: {msg}" if source else msg, key=key) from None


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; a missing file or a syntax error is a :class:`ConfigError`."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no such file '{p}'") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"'{p}' is not valid YAML: {err}") from None
