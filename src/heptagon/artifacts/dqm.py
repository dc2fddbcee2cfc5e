"""The DQM app's JSON files: ``model.json`` of ``heptagon dqm train`` (the readable half of
a DQM model; the arrays are in ``model.npz``, read with ``allow_pickle=False``) and
``runs.json`` of ``heptagon dqm simulate`` (the run list beside ``histograms.npz``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from heptagon.artifacts.base import Artifact, Record

__all__ = [
    "DqmMethod",
    "DqmModelFile",
    "DqmRunList",
    "DqmRunRecord",
    "DqmRuns",
    "FeatureImportance",
]


class DqmMethod(Record):
    """What a histogram method keeps besides its arrays."""

    ref_rate: float = Field(description="the reference's mean event rate per lumisection")
    top_bins: int | None = Field(description="bins per histogram error (None: all)")


class DqmRuns(Record):
    """How many runs the model was fitted on, calibrated on, and saw labelled bad."""

    fit: int = Field(ge=0)
    calibration: int = Field(ge=0)
    bad: int = Field(ge=0)


class FeatureImportance(Record):
    """One run summary and its importance in the classifiers' ranking."""

    feature: str
    importance: float


class DqmModelFile(Artifact):
    """``model.json`` of a DQM model."""

    WHAT: ClassVar[str] = "DQM model"
    SCHEMA_VERSION: ClassVar[int] = 1

    histograms: list[str] = Field(description="the monitored histograms, in order")
    config: dict[str, Any] = Field(description="the training settings (dqm TrainConfig)")
    runs: DqmRuns
    methods: dict[str, DqmMethod]
    thresholds: dict[str, dict[str, float]] = Field(
        description="per method, the alarm threshold of each level (lumisection, run)"
    )
    feature_ranking: list[FeatureImportance]
    classifier_features: list[str]


class DqmRunRecord(Record):
    """One simulated run: the app's run plan (``RunPlan``) and its good/bad label."""

    run: int = Field(ge=0)
    n_ls: int = Field(gt=0, description="lumisections in the run")
    peak_lumi: float = Field(gt=0, description="peak luminosity relative to nominal")
    fault: dict[str, Any] | None = Field(
        description="the injected fault's settings (the app's Fault, recorded verbatim); "
        "null for a good run"
    )
    bad: bool


class DqmRunList(Artifact):
    """``runs.json`` of a DQM data dir: its runs and the bin edges of each histogram in
    ``histograms.npz``."""

    WHAT: ClassVar[str] = "DQM run list"

    runs: list[DqmRunRecord]
    edges: dict[str, list[list[float]]] = Field(
        description="histogram name -> the bin edges of each of its axes"
    )
