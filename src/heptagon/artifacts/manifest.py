"""A dataset directory's artifacts: ``manifest.json`` (jets, events or detector elements)
and the sidecar record ``shards/.<shard>.json`` written beside each finished shard.

The generator, selection, detector, lepton, b-tag, geometry and pile-up sections are the
settings of the generate stage's own configuration objects, recorded key by key as plain
JSON (the stage owns their types); everything else is typed here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from heptagon.artifacts.base import Artifact, Record, read_by_kind
from heptagon.errors import DataError

__all__ = [
    "ElementManifest",
    "EventClass",
    "EventManifest",
    "JetClass",
    "JetManifest",
    "Manifest",
    "SampleSettings",
    "ShardFile",
    "ShardRecord",
    "load_manifest",
]

#: a section of settings recorded verbatim (a generate-stage configuration object's fields)
Settings = dict[str, Any]
Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


class ShardFile(Record):
    """One shard as the manifest lists it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    file: str = Field(description="path relative to the dataset dir (shards/<Class>_<i>.<ext>)")
    cls: str = Field(alias="class", description="the class (process) the shard holds")
    entries: int = Field(ge=0, description="jets or events in the shard")
    sha256: Sha256
    seed: int = Field(description="the shard's Pythia / generator seed")


class ShardRecord(Artifact, ShardFile):
    """The sidecar of a finished shard: what lets a rerun verify and skip it, and what the
    manifest's per-class cross sections are combined from (absent for element shards)."""

    WHAT: ClassVar[str] = "shard record"

    sigma_gen_pb: float | None = Field(None, description="Pythia's cross-section estimate")
    sigma_err_pb: float | None = None
    n_tried: int | None = None
    n_accepted: int | None = None
    events_generated: int | None = Field(None, description="jet shards: events run")
    jets_selected: int | None = Field(None, description="jet shards: jets passing, >= entries")

    def listing(self) -> ShardFile:
        """The shard as the manifest lists it."""
        return ShardFile.model_validate(self.model_dump(include=set(ShardFile.model_fields)))


class SampleSettings(Artifact):
    """``DATASET/.generate.json``: the settings of the first run into a dataset dir; a
    later run with other settings is refused, one with the same ones resumes."""

    WHAT: ClassVar[str] = "sample settings"

    settings: Settings


class _Class(Record):
    label: str = Field(description="the one-hot label branch, label_<Class>")
    description: str
    pythia_settings: list[str]
    n_tried: int
    n_accepted: int
    sigma_gen_pb: float = Field(description="the class's combined cross-section estimate (pb)")
    sigma_err_pb: float


class JetClass(_Class):
    """One class of a jet sample."""

    truth_rule: Settings
    jets: int
    jets_selected: int
    events_generated: int


class EventClass(_Class):
    """One process of an event sample."""

    events: int


class _Manifest(Artifact):
    WHAT: ClassVar[str] = "dataset manifest"

    versions: dict[str, str] = Field(description="heptagon and the generation toolchain")
    generator: Settings
    seed: int
    shard_size: int = Field(gt=0)
    files: list[ShardFile]
    branches: list[str] = Field(description="the column names of a shard")
    variation: Settings | None = Field(
        None,
        description="the named systematic variation the sample was made with "
        "(heptagon.physics.systematics.Variation); absent: nominal",
    )
    weight_variations: list[str] = Field(
        default_factory=list,
        description="the weight variations whose columns weight_<name> the shards hold "
        "(isr_up, ...)",
    )


class JetManifest(_Manifest):
    """``manifest.json`` of ``heptagon generate``."""

    kind: Literal["jets"]
    sample: str
    description: str
    jets_per_class: int
    format: Literal["parquet", "root"]
    selection: Settings
    detector: Settings | None
    detector_chain: Literal["full", "fast"] = Field(
        "full",
        description="the detector chain whose settings `detector` holds (full: "
        "heptagon.generate.detector; fast: heptagon.generate.fastsim)",
    )
    pileup: Settings | None = None
    classes: dict[str, JetClass]


class EventManifest(_Manifest):
    """``manifest.json`` of ``heptagon generate-events``."""

    kind: Literal["events"]
    sample: str
    events_per_class: int
    format: Literal["parquet", "root"]
    jets: Settings
    leptons: Settings
    btag: Settings
    mpi: bool
    detector: Settings | None
    pileup: Settings | None = None
    weights: str
    classes: dict[str, EventClass]


class ElementManifest(_Manifest):
    """``manifest.json`` of ``heptagon mlpf generate`` (detector elements)."""

    kind: Literal["elements"]
    sample: str
    events: int
    pileup: float
    pileup_library: int
    beamspot_sigma_z_mm: float
    gun_energy: tuple[float, float]
    gun_eta_max: float
    detector: Settings
    geometry: Settings
    classes: list[str] = Field(description="the particle classes of the targets")


Manifest = JetManifest | EventManifest | ElementManifest
_BY_KIND: dict[str, type[JetManifest] | type[EventManifest] | type[ElementManifest]] = {
    "jets": JetManifest,
    "events": EventManifest,
    "elements": ElementManifest,
}


def load_manifest(path: str | Path) -> Manifest:
    """Read a dataset's ``manifest.json`` (``path`` is the dataset dir or the file), typed
    by its ``kind``; a :class:`DataError` naming the file (and key) otherwise."""
    p = Path(path)
    p = p / "manifest.json" if p.is_dir() else p
    if not p.exists():
        raise DataError("no manifest.json (not a heptagon dataset dir?)", file=p)
    return read_by_kind(p, _BY_KIND, "dataset manifest")
