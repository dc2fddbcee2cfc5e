"""``RUN/eval/systematics.json``: a tagger's efficiency and mistag rate at its working points
per jet-pT bin, with the statistical, each systematic and the total uncertainty
(``heptagon evaluate RUN --data NOMINAL --systematics VARIED ...``,
:mod:`heptagon.evaluate.systematics`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from heptagon.artifacts.base import Artifact, Record

__all__ = ["RateBin", "SystematicsTable", "VariationInput", "WorkingPointTable"]


class VariationInput(Record):
    """One variation the table includes, and where it came from."""

    name: str
    kind: Literal["shape", "weight", "generator"]
    group: str = Field(description="the source of uncertainty it belongs to")
    direction: Literal["up", "down", "alternative"]
    origin: str = Field(description="the varied dataset dir, or the nominal's weight column")


class RateBin(Record):
    """An efficiency (or mistag rate) in one jet-pT bin and its uncertainties."""

    pt_low: float = Field(description="GeV; the first bin takes the jets below it too")
    pt_high: float = Field(description="GeV; the last bin takes the jets above it too")
    value: float | None = Field(description="the nominal rate; null without jets")
    n_jets: int = Field(ge=0, description="nominal jets of the class in the bin")
    stat: float | None = Field(description="binomial error with the effective count")
    shifts: dict[str, float | None] = Field(
        description="variation -> its rate minus the nominal one (signed)"
    )
    systematics: dict[str, float | None] = Field(
        description="source -> its uncertainty: the largest |shift| of its variations"
    )
    syst: float | None = Field(description="the systematics added in quadrature")
    total: float | None = Field(description="stat and syst added in quadrature")


class WorkingPointTable(Record):
    """The rates at one working point."""

    target_efficiency: float = Field(description="the nominal signal efficiency it is set at")
    threshold: float = Field(description="the cut on the signal score")
    efficiency: list[RateBin] = Field(description="signal jets passing, per pT bin")
    mistag: list[RateBin] = Field(description="background jets passing, per pT bin")


class SystematicsTable(Artifact):
    """The efficiency and mistag table with uncertainties."""

    WHAT: ClassVar[str] = "systematics table"

    signal: str
    background: str
    nominal: str = Field(description="the nominal dataset dir")
    checkpoint_sha256: str = Field(description="the checkpoint the scores come from")
    score: str = Field(description="the score cut on: the signal class's probability")
    pt_edges: list[float] = Field(description="GeV, the pT bins' edges (from the nominal)")
    variations: list[VariationInput]
    working_points: list[WorkingPointTable]
