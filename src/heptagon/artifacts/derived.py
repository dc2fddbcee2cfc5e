"""``derived.json``: the record of a dataset that ``heptagon data pnn | domains | mix``
derived from generated (or other derived) datasets (:mod:`heptagon.data.derive`).

It says what was done (``operation`` and its ``settings``), to which inputs (each with the
sha256 of its own ``manifest.json`` or ``derived.json``), with which seed, and lists the
shards written with their checksums. It is not a ``manifest.json``: a derived dataset is
not a generated sample, and the generator's cross sections do not describe it."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from heptagon.artifacts.base import Artifact, Record

__all__ = ["DERIVED_FILE", "DerivedDataset", "DerivedInput", "DerivedShard"]

#: the record's file name in a derived dataset dir
DERIVED_FILE = "derived.json"

Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


class DerivedInput(Record):
    """One input dataset."""

    path: str = Field(description="the dataset dir as given")
    record: Literal["manifest.json", "derived.json"] = Field(
        description="the input's own record file"
    )
    sha256: Sha256 = Field(description="sha256 of that record file")


class DerivedShard(Record):
    """One shard written."""

    file: str = Field(description="path relative to the dataset dir (shards/<name>.parquet)")
    source: str = Field(description="the input shard it was made from, relative to its input")
    role: str = Field(description="the input it came from (a key of inputs)")
    entries: int = Field(ge=0)
    sha256: Sha256


class DerivedDataset(Artifact):
    """``derived.json`` of ``heptagon data pnn | domains | mix``."""

    WHAT: ClassVar[str] = "derived dataset record"

    operation: Literal["pnn", "domains", "mix"]
    heptagon: str = Field(description="the heptagon version that wrote it")
    seed: int | None = Field(description="the random seed (None: nothing was drawn)")
    inputs: dict[str, DerivedInput] = Field(description="role (signal, source, ...) -> input")
    settings: dict[str, Any] = Field(description="the operation's options and what it found")
    files: list[DerivedShard]
    branches: list[str] = Field(description="the column names of a shard")
