"""A run directory's ``model.json``: what rebuilds the trained model (the registry name
and options, or the user's network file) and where its weights are."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from heptagon.artifacts.base import Artifact, Record

__all__ = ["ModelInfo", "NetworkRecord", "ParentRecord"]


class NetworkRecord(Record):
    """A model defined in the user's network file (provenance: never imported from the
    run directory by itself)."""

    file: str = Field(description="the run's copy of the file, relative to the run dir")
    source: str = Field(description="the file the run was trained from")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")


class ParentRecord(Record):
    """The run a top-up continued from (``heptagon train --continue-from RUN``): its
    weights and standardisation were the start (docs/fine-tuning.md)."""

    run: str = Field(description="the parent run directory (absolute path)")
    weights_sha256: str = Field(
        pattern="^[0-9a-f]{64}$", description="sha256 of the parent's best weights"
    )
    ewc: float | None = Field(
        default=None, ge=0, description="EWC strength (Fisher on the parent's training split)"
    )
    replay: int | None = Field(
        default=None, ge=1, description="entries of the parent's training split replayed"
    )


class ModelInfo(Artifact):
    """``RUN/model.json``."""

    WHAT: ClassVar[str] = "model description"

    format: Literal["heptagon-model"] = "heptagon-model"
    name: str = Field(description="the model's registry name (or the network file's stem)")
    options: dict[str, Any] = Field(description="every option the model was built with")
    input_dims: dict[str, int] = Field(description="features per input group")
    input_names: list[str] = Field(description="the model's inputs, in order")
    num_classes: int = Field(gt=0, description="outputs (1 for a regression)")
    class_names: list[str]
    task: Literal["classification", "regression", "anomaly"] = Field(
        description="anomaly: an autoencoder trained on train.background (docs/anomaly.md)"
    )
    weights: str = Field(description="the best weights, relative to the run dir")
    network: NetworkRecord | None = None
    parent: ParentRecord | None = Field(
        default=None, description="a top-up: the run it continued from (--continue-from)"
    )
