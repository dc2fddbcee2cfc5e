"""``DIR/ad.json`` of ``heptagon trigger ad``: an anomaly detector quantised to fixed
point and emulated as Level-1 firmware, float vs fixed point at a fixed trigger rate."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from heptagon.artifacts.base import Artifact, Record
from heptagon.artifacts.metrics import AnomalyMetrics

__all__ = ["AdEmulation", "TriggerAdFile"]


class AdEmulation(Record):
    """The hls4ml C++ emulation of the quantised network against its torch fixed-point
    forward pass, on the scored entries."""

    hls4ml_version: str
    entries: int = Field(ge=0)
    max_abs_diff: float = Field(description="largest |emulated - torch| network output")
    bit_exact: bool


class TriggerAdFile(Artifact):
    """What ``heptagon trigger ad`` measured. ``metrics.scores`` holds the anomaly score of
    each variant: ``float`` (the trained model), ``fixed_point`` (the quantisation-aware
    model's torch forward pass) and, with g++, ``emulated`` (hls4ml's bit-accurate C++);
    each per held-out class: AUC and signal efficiency at the rate."""

    WHAT: ClassVar[str] = "anomaly trigger report"

    run: str = Field(description="the anomaly run (train.task: anomaly)")
    model: str
    score: str = Field(description="the model's anomaly score (mse or kl)")
    firmware: str = Field(description="the network in firmware: autoencoder or encoder")
    precision: str = Field(description="weights, biases and results of every layer")
    last_result_precision: str
    input_precision: str
    qat_epochs: int = Field(ge=0, description="quantisation-aware fine-tuning epochs")
    sample: str = Field(description="what was scored: 'test' (the run's split) or files")
    metrics: AnomalyMetrics
    emulation: AdEmulation | None = Field(description="null: no g++ (not emulated)")
