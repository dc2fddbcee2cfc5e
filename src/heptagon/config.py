"""Typed configuration: pydantic models (``extra="forbid"``) validated with key-precise errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from heptagon.errors import ConfigError, DataError

__all__ = ["dotted_key", "load_yaml", "validate", "validate_in_file", "yaml_value"]

M = TypeVar("M", bound=BaseModel)


def dotted_key(loc: tuple[int | str, ...], data: Any) -> str:
    """The dotted key of a pydantic error location in ``data``: the parts that exist in
    the input (the tags pydantic inserts for union members are dropped), plus a missing
    mapping key at the end."""
    parts: list[str] = []
    node = data
    for i, part in enumerate(loc):
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if found:
            node = node[part]
        elif not (isinstance(node, dict) and i == len(loc) - 1):
            continue  # a union tag
        parts.append(str(part))
    return ".".join(parts)


def validate(model: type[M], data: Any, *, source: str | Path | None = None) -> M:
    """Validate ``data`` into ``model``; the first problem becomes a :class:`ConfigError`
    naming its dotted key (and ``source``, the file, where given). A union reports what
    each of its members expected."""
    where = f" (in {source})" if source else ""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        key = dotted_key(errors[0]["loc"], data) or None
        if errors[0]["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            same = [e["msg"] for e in errors if (dotted_key(e["loc"], data) or None) == key]
            message = " or ".join(dict.fromkeys(m.removeprefix("Value error, ") for m in same))
        raise ConfigError(message + where, key=key) from None
    except ConfigError as err:  # raised by a validator: add the file
        if not where:
            raise
        raise ConfigError(f"{err.args[0].removeprefix(f'{err.key}: ')}{where}", err.key) from None


def validate_in_file(model: type[M], data: Any, file: str | Path, *key: str | int) -> M:
    """Validate ``data``, read from ``file`` at ``key`` (its path of keys in the file),
    into ``model``: values from a file that may come from anyone; the first problem
    becomes a :class:`DataError` naming the file and the dotted key of the value."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise DataError(first["msg"], file, ".".join(map(str, (*key, *first["loc"])))) from None


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; a missing file or a syntax error is a :class:`ConfigError`."""
    import yaml  # ~8 ms: not at the command line's start-up

    p = Path(path)
    try:
        return yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no such file '{p}'") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"'{p}' is not valid YAML: {err}") from None


def yaml_value(text: str) -> Any:
    """A command-line value (``--set key=VALUE``, ``--detector-set FIELD=VALUE``) read as
    YAML: ``1e-3`` a number, ``[0.5, 0.75]`` a list; empty text is ``""``, and text YAML
    cannot read stays text (the model it goes into then says what it expected)."""
    import yaml

    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
