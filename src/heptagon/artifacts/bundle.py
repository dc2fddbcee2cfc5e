"""A publication bundle's metadata: heptagon's own ``metadata.json`` (:class:`BundleMetadata`,
versioned like every artifact) and the three files of the outside formats that make the
bundle citable and a Zenodo upload one step, rendered from it:

- ``CITATION.cff``: :class:`CitationFile`, Citation File Format 1.2.0
  (https://citation-file-format.github.io/1.2.0/);
- ``codemeta.json``: :class:`CodeMeta`, CodeMeta 3.0 (https://w3id.org/codemeta/3.0);
- ``.zenodo.json``: :class:`ZenodoMetadata`, the ``metadata`` object of Zenodo's deposit
  API (https://developers.zenodo.org/#representation).

The outside formats carry no ``schema_version`` (their own version is in the file:
``cff-version``, ``@context``); their models hold the keys heptagon writes, spelled as
the format spells them (aliases), and forbid any other.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from heptagon.artifacts.base import Artifact, Record

__all__ = [
    "BundleMetadata",
    "CitationFile",
    "CodeMeta",
    "CodeMetaPerson",
    "Environment",
    "PackageRecord",
    "TrainingData",
    "ZenodoCreator",
    "ZenodoMetadata",
    "ZenodoRelated",
]

Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


class PackageRecord(Record):
    """An installed distribution: its version and, where its installer recorded one, the
    sha256 of its ``RECORD`` file (the list of every installed file with its own sha256,
    so equal digests mean the same installed files)."""

    version: str
    record_sha256: Sha256 | None = Field(
        None, description="sha256 of the dist-info RECORD; null: none (editable install)"
    )


class Environment(Record):
    """The software the bundle was made with."""

    python: str = Field(description="the Python version")
    platform: str = Field(description="operating system and machine (platform.platform())")
    heptagon: str = Field(description="heptagon's version")
    heptagon_source_sha256: Sha256 = Field(
        description="sha256 over heptagon's installed package files: every file under the "
        "heptagon package, sorted by relative path, each as '<sha256>  <path>' line "
        "(the SHA256SUMS format); equal digests mean the same heptagon code"
    )
    packages: dict[str, PackageRecord] = Field(description="the key dependencies")


class TrainingData(Record):
    """What the model was trained on: the dataset manifest (when the files are one heptagon
    dataset) and how the run split it."""

    manifest_sha256: Sha256 | None = Field(
        description="sha256 of the dataset's manifest.json (which lists every shard's "
        "sha256); null for user files without a manifest"
    )
    kind: str | None = Field(description="the manifest's kind: jets, events, elements")
    sample: str = Field(description="the sample's name ('user files' without a manifest)")
    seed: int | None = Field(description="the dataset's generator seed")
    entries: dict[str, int] = Field(description="jets or events per class in the dataset")
    split_fractions: list[float] = Field(description="train / val / test, deterministic")
    split_seed: int = Field(description="the run's seed (split and training)")


class BundleMetadata(Artifact):
    """``BUNDLE/metadata.json``: what the bundle is, under which licence, made with what,
    from which data."""

    WHAT: ClassVar[str] = "bundle metadata"

    title: str
    description: str
    model_name: str = Field(description="the architecture (model.json's name)")
    task: Literal["classification", "regression", "anomaly"]
    outputs: list[str] = Field(description="the ONNX output's columns, in order")
    license: str = Field(description="the model's licence, one SPDX licence id")
    model_version: str
    identifier: str | None = Field(
        description="a persistent identifier (a DOI, e.g. Zenodo's reserved one); null: none yet"
    )
    authors: list[str] = Field(min_length=1, description="'Family, Given' or an entity")
    keywords: list[str]
    checkpoint_sha256: Sha256 = Field(description="the checkpoint model.onnx was made from")
    training_data: TrainingData
    environment: Environment


class _Alias(Record):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CffPerson(_Alias):
    """A CFF author who is a person."""

    family_names: str = Field(alias="family-names")
    given_names: str | None = Field(None, alias="given-names")


class CffEntity(_Alias):
    """A CFF author that is an entity (a collaboration, a group)."""

    name: str


class CffIdentifier(_Alias):
    """A CFF identifier."""

    type: Literal["doi", "url", "swh", "other"]
    value: str


class CitationFile(_Alias):
    """``CITATION.cff``: the keys of Citation File Format 1.2.0 heptagon writes."""

    cff_version: Literal["1.2.0"] = Field("1.2.0", alias="cff-version")
    message: str
    type: Literal["software", "dataset"] = "software"
    title: str
    authors: list[CffPerson | CffEntity] = Field(min_length=1)
    version: str
    license: str
    abstract: str
    keywords: list[str]
    identifiers: list[CffIdentifier] | None = Field(None, description="none without one")


class CodeMetaPerson(_Alias):
    """A CodeMeta author: a Person (family and given name) or an Organization (name)."""

    type: Literal["Person", "Organization"] = Field(alias="@type")
    family_name: str | None = Field(None, alias="familyName")
    given_name: str | None = Field(None, alias="givenName")
    name: str | None = None


class CodeMeta(_Alias):
    """``codemeta.json``: the CodeMeta 3.0 terms heptagon writes."""

    context: Literal["https://w3id.org/codemeta/3.0"] = Field(
        "https://w3id.org/codemeta/3.0", alias="@context"
    )
    type: Literal["SoftwareSourceCode"] = Field("SoftwareSourceCode", alias="@type")
    name: str
    description: str
    version: str
    license: str = Field(description="the SPDX licence URL")
    author: list[CodeMetaPerson] = Field(min_length=1)
    keywords: list[str]
    identifier: str | None = None
    software_requirements: list[str] = Field(alias="softwareRequirements")
    programming_language: str = Field("ONNX", alias="programmingLanguage")


class ZenodoCreator(_Alias):
    """A Zenodo creator: ``'Family, Given'`` or an entity's name."""

    name: str


class ZenodoRelated(_Alias):
    """A Zenodo related identifier."""

    identifier: str
    relation: str = Field(description="Zenodo's relation, e.g. isCompiledBy")
    resource_type: str | None = None


class ZenodoMetadata(_Alias):
    """``.zenodo.json``: the deposit metadata keys heptagon writes (Zenodo reads the file
    from a GitHub release; its content is the API's ``metadata`` object)."""

    upload_type: Literal["software"] = "software"
    title: str
    creators: list[ZenodoCreator] = Field(min_length=1)
    description: str
    license: str = Field(description="Zenodo's licence id: the SPDX id, lower case")
    version: str
    keywords: list[str]
    related_identifiers: list[ZenodoRelated]
    doi: str | None = Field(None, description="a reserved or existing DOI")
