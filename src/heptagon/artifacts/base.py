"""The base of every JSON file heptagon writes and later reads: a pydantic model with a
``schema_version``, read and written only through :meth:`Artifact.read` and
:meth:`Artifact.write`.

A subclass sets two class attributes: ``SCHEMA_VERSION`` (the version this heptagon writes
and reads; bump it whenever a field changes meaning, is renamed or becomes required) and
``WHAT`` (what the file is, for messages, e.g. ``"dataset manifest"``). Reading a file
whose ``schema_version`` is missing, not an integer, or not the current one is a
:class:`~heptagon.errors.DataError` naming the file and the key ``schema_version``; any
other field that fails validation is a ``DataError`` naming the file and the dotted key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from heptagon.errors import DataError
from heptagon.io import read_json, write_json_atomic

__all__ = ["Artifact", "Record", "read_by_kind"]

A = TypeVar("A", bound="Artifact")


class Record(BaseModel):
    """A nested part of an artifact: unknown keys are errors, like the artifact's own."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The plain JSON object this part is written as."""
        return self.model_dump(mode="json", by_alias=True)


def _schema_version_const(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """JSON Schema hook: ``schema_version`` is the one value this heptagon reads."""
    version = getattr(cls, "SCHEMA_VERSION", None)
    prop = schema.get("properties", {}).get("schema_version")
    if version is not None and prop is not None:
        prop["const"] = version
        prop.pop("default", None)
        schema.setdefault("required", []).insert(0, "schema_version")


class Artifact(Record):
    """A versioned JSON artifact (``manifest.json``, ``model.json``, ``metrics.json``, ...)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_version_const)

    #: the version of the layout this heptagon writes and reads
    SCHEMA_VERSION: ClassVar[int] = 1
    #: what the file is, for messages ("dataset manifest", "run model description", ...)
    WHAT: ClassVar[str] = "artifact"

    #: the layout's version: always the class's SCHEMA_VERSION (the validator below sets it
    #: for an artifact built in code; a file's is checked by :meth:`parse`)
    schema_version: int = 0

    @model_validator(mode="before")
    @classmethod
    def _current_version(cls, data: Any) -> Any:
        """Built in code, an artifact gets the current version; a different one is refused
        (a file's version is checked first, with a clearer message, by :meth:`parse`)."""
        if isinstance(data, dict):
            version = data.get("schema_version", cls.SCHEMA_VERSION)
            if version != cls.SCHEMA_VERSION:
                raise ValueError(
                    f"schema_version {version!r} is not {cls.SCHEMA_VERSION}, the version "
                    f"of the {cls.WHAT} this heptagon reads"
                )
            return {**data, "schema_version": cls.SCHEMA_VERSION}
        return data

    @classmethod
    def parse(cls: type[A], data: dict[str, Any], file: str | Path) -> A:
        """Validate the JSON object ``data`` read from ``file`` (named in every error)."""
        version = data.get("schema_version")
        if "schema_version" not in data:
            raise DataError(
                f"no schema_version: not a heptagon {cls.WHAT}, or written by a heptagon "
                f"older than this one (which reads version {cls.SCHEMA_VERSION}); rewrite it",
                file=file,
                key="schema_version",
            )
        if not isinstance(version, int) or isinstance(version, bool):
            raise DataError(
                f"schema_version {version!r} is not an integer (this heptagon reads "
                f"{cls.WHAT} version {cls.SCHEMA_VERSION})",
                file=file,
                key="schema_version",
            )
        if version > cls.SCHEMA_VERSION:
            raise DataError(
                f"{cls.WHAT} version {version} is newer than this heptagon reads "
                f"({cls.SCHEMA_VERSION}); upgrade heptagon",
                file=file,
                key="schema_version",
            )
        if version != cls.SCHEMA_VERSION:
            raise DataError(
                f"{cls.WHAT} version {version} is older than this heptagon reads "
                f"({cls.SCHEMA_VERSION}); rewrite it with this heptagon",
                file=file,
                key="schema_version",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or None
            raise DataError(f"invalid {cls.WHAT}: {first['msg']}", file=file, key=key) from None

    @classmethod
    def read(cls: type[A], path: str | Path) -> A:
        """Read and validate the artifact at ``path`` (errors as :meth:`parse`'s)."""
        return cls.parse(read_json(path, cls.WHAT), path)

    def write(self, path: str | Path) -> None:
        """Write the artifact to ``path`` atomically (indented, key-sorted JSON)."""
        write_json_atomic(path, self.to_json())


def read_by_kind(path: str | Path, classes: Mapping[str, type[A]], what: str) -> A:
    """Read the artifact at ``path`` as the class its ``kind`` key names in ``classes``
    (a file of several layouts: the dataset manifest, ``metrics.json``); an unknown kind is
    a :class:`DataError` naming the file and the key ``kind``."""
    data = read_json(path, what)
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in classes:
        raise DataError(
            f"unknown {what} kind {kind!r} (one of {', '.join(classes)})", file=path, key="kind"
        )
    return classes[kind].parse(data, path)
