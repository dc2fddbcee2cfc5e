"""The artifacts of data/simulation scale factors: the tag-and-probe dataset manifest
(``heptagon sf generate``, with the pseudo-data's sealed truth) and the scale-factor table
(``heptagon sf measure``, completed by ``sf closure`` and ``sf toys``), which ``publish``
puts into the HEPData record and the model card and ``predict --scale-factors`` applies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from heptagon.artifacts.base import Artifact, Record
from heptagon.artifacts.manifest import ShardFile
from heptagon.errors import DataError

__all__ = [
    "Closure",
    "ScaleFactorBin",
    "ScaleFactorTable",
    "SealedTruth",
    "TagProbeManifest",
    "ToyStudy",
]

Settings = dict[str, Any]


class SealedTruth(Record):
    """What pseudo-data hide: base64-encoded JSON (a blind against reading by accident,
    not encryption) and the SHA-256 of the JSON text."""

    encoding: Literal["base64-json"] = "base64-json"
    payload: str
    sha256: str

    @classmethod
    def seal(cls, hidden: dict[str, Any]) -> SealedTruth:
        """Seal ``hidden``."""
        text = json.dumps(hidden, sort_keys=True)
        return cls(
            payload=base64.b64encode(text.encode()).decode(),
            sha256=hashlib.sha256(text.encode()).hexdigest(),
        )

    def unseal(self, file: str | Path) -> dict[str, Any]:
        """The hidden settings; :class:`DataError` naming ``file`` if they were altered."""
        try:
            text = base64.b64decode(self.payload, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise DataError("the sealed block is not base64 JSON", file, "sealed") from None
        if hashlib.sha256(text.encode()).hexdigest() != self.sha256:
            raise DataError("the sealed block does not match its checksum", file, "sealed")
        hidden: dict[str, Any] = json.loads(text)
        return hidden


class TagProbeManifest(Artifact):
    """``DATASET/manifest.json`` of a tag-and-probe sample (``heptagon sf generate``)."""

    WHAT: ClassVar[str] = "tag-and-probe manifest"

    kind: Literal["tag-and-probe"] = "tag-and-probe"
    sample: str
    description: str
    versions: dict[str, str]
    generator: Settings = Field(description="beam energy and the (visible) Pythia settings")
    seed: int
    probes: int = Field(gt=0)
    shard_size: int = Field(gt=0)
    format: Literal["parquet", "root"]
    mpi: bool
    probe: Settings = Field(description="the probe jet's definition")
    tag: Settings = Field(description="the tag's cuts")
    detector: Settings | None = Field(description="the detector; null for pseudo-data (hidden)")
    variation: Settings | None = Field(None, description="the systematic variation, if any")
    weight_variations: list[str] = Field(default_factory=list)
    categories: list[str] = Field(description="probe_category value -> truth category")
    pseudo_data: bool
    sealed: SealedTruth | None = Field(
        description="pseudo-data: the hidden settings and truth files (heptagon sf reveal)"
    )
    events_generated: int = Field(ge=0)
    sigma_gen_pb: float
    files: list[ShardFile]
    branches: list[str]


class ScaleFactorBin(Record):
    """One probe-pT bin: efficiencies, the SF and its uncertainty with the breakdown
    (absolute uncertainties of the SF: ``data_stat``, ``sim_stat``, one per systematic
    group; the total is their quadratic sum up to the fit's correlations)."""

    pt_low: float
    pt_high: float
    n_data_pass: int = Field(ge=0)
    n_data_fail: int = Field(ge=0)
    eff_sim: float = Field(description="the nominal simulation's efficiency (merged tops)")
    eff_sim_stat: float = Field(description="its statistical uncertainty")
    eff_sim_syst: dict[str, float] = Field(
        description="per systematic group: the largest shift of eff_sim up / down"
    )
    eff_data: float
    eff_data_err: float
    sf: float
    sf_err: float
    breakdown: dict[str, float]


class Closure(Record):
    """The SF applied to the simulation against the pseudo-data's true efficiency (from
    the sealed truth), per bin: ``pull = (SF eff_sim - eff_true) / (sf_err eff_sim)``."""

    eff_true: list[float]
    eff_predicted: list[float]
    pulls: list[float]
    within_uncertainty: bool = Field(description="every bin's |pull| below limit")
    limit: float = Field(description="the |pull| bound checked (2: 95% per bin)")


class ToyStudy(Record):
    """Coverage of the SF uncertainty: pulls over toys drawn from the fitted model."""

    toys: int = Field(ge=0, description="toys per bin")
    seed: int
    pull_mean: list[float]
    pull_width: list[float]
    pull_mean_all: float
    pull_width_all: float
    pull_median: list[float]
    pull_width_robust: list[float] = Field(description="1.4826 x the median absolute deviation")
    outliers: list[int] = Field(description="toys with |pull| > 5, per bin")
    fits: int = Field(ge=0, description="toy fits that converged, all bins")


class ScaleFactorTable(Artifact):
    """``SF.json`` of ``heptagon sf measure``: the tagger's data/simulation scale factors
    per probe-pT bin at one working point."""

    WHAT: ClassVar[str] = "scale-factor table"

    tagger: str = Field(description="the model (its ONNX or bundle) whose score was cut")
    tagger_sha256: str = Field(description="the sha256 of the tagger's ONNX file")
    sqrt_s_gev: float = Field(gt=0, description="the samples' centre-of-mass energy")
    score: str = Field(description="the score column cut on")
    threshold: float = Field(description="score > threshold passes")
    working_point: float | None = Field(
        description="the signal efficiency the threshold was chosen for, if one was"
    )
    observable: str = Field(description="the fitted probe observable")
    observable_edges: list[float]
    pt_variable: str
    pt_edges: list[float]
    fit: str = Field(description="the fit's tool and model, in words")
    simulation: str
    data: str
    variation_samples: list[str] = Field(description="the systematic-variation datasets")
    variations: list[str] = Field(description="the systematic groups in the fit")
    bins: list[ScaleFactorBin]
    closure: Closure | None = None
    toys: ToyStudy | None = None
