"""``RUN/options.json`` of ``heptagon mlpf train``: what a resumed run must match."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from heptagon.artifacts.base import Artifact

__all__ = ["MlpfOptionsFile"]


class MlpfOptionsFile(Artifact):
    """The options an MLPF run was started with."""

    WHAT: ClassVar[str] = "MLPF options"

    options: dict[str, Any] = Field(description="every MLPFTrainOptions field, as JSON")
    model: dict[str, Any] = Field(description="the options of the MLPF network")
