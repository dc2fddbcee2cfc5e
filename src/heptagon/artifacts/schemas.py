"""The JSON Schemas of heptagon's artifacts, as ``docs/schemas/<artifact>.schema.json``
(``python -m heptagon.artifacts DIR`` writes them; a test keeps ``docs/schemas`` current)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from heptagon.artifacts.anomaly import TriggerAdFile
from heptagon.artifacts.bundle import BundleMetadata
from heptagon.artifacts.derived import DerivedDataset
from heptagon.artifacts.dqm import DqmModelFile, DqmRunList
from heptagon.artifacts.manifest import (
    ElementManifest,
    EventManifest,
    JetManifest,
    SampleSettings,
    ShardRecord,
)
from heptagon.artifacts.metrics import (
    AnomalyEvaluation,
    BinaryEvaluation,
    MulticlassEvaluation,
    RegressionEvaluation,
)
from heptagon.artifacts.mlpf import MlpfOptionsFile
from heptagon.artifacts.preprocess import PreprocessFile
from heptagon.artifacts.run import ModelInfo
from heptagon.artifacts.scale_factors import ScaleFactorTable, TagProbeManifest
from heptagon.artifacts.systematics import SystematicsTable
from heptagon.artifacts.trigger import TriggerHlsFile, TriggerRunFile
from heptagon.io import atomic_path, make_dir

__all__ = ["ARTIFACTS", "json_schema", "write_schemas"]

#: artifact name -> (the file it describes, its model or tagged union of models)
ARTIFACTS: dict[str, tuple[str, Any]] = {
    "manifest": (
        "DATASET/manifest.json",
        Annotated[JetManifest | EventManifest | ElementManifest, Field(discriminator="kind")],
    ),
    "shard-record": ("DATASET/shards/.<shard>.json", ShardRecord),
    "sample-settings": ("DATASET/.generate.json", SampleSettings),
    "derived": ("DERIVED_DATASET/derived.json", DerivedDataset),
    "model": ("RUN/model.json", ModelInfo),
    "preprocess": ("RUN/preprocess.json", PreprocessFile),
    "bundle-metadata": ("BUNDLE/metadata.json", BundleMetadata),
    "metrics": (
        "RUN/eval/metrics.json",
        Annotated[
            BinaryEvaluation | MulticlassEvaluation | RegressionEvaluation | AnomalyEvaluation,
            Field(discriminator="kind"),
        ],
    ),
    "systematics": ("RUN/eval/systematics.json", SystematicsTable),
    "dqm-model": ("DQM_MODEL/model.json", DqmModelFile),
    "dqm-runs": ("DQM_DATA/runs.json", DqmRunList),
    "mlpf-options": ("MLPF_RUN/options.json", MlpfOptionsFile),
    "trigger-ad": ("DIR/ad.json", TriggerAdFile),
    "trigger-run": ("TRIGGER_RUN/trigger.json", TriggerRunFile),
    "trigger-hls": ("DIR/hls.json", TriggerHlsFile),
    "scale-factors": ("SF_DIR/scale_factors.json", ScaleFactorTable),
    "tag-probe-manifest": ("TAG_PROBE_DATASET/manifest.json", TagProbeManifest),
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the artifact ``name`` (a key of :data:`ARTIFACTS`)."""
    file, model = ARTIFACTS[name]
    schema: dict[str, Any] = TypeAdapter(model).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"heptagon {name}",
        "description": f"{file}, as heptagon writes and reads it.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def write_schemas(out: str | Path) -> list[Path]:
    """Write every artifact's schema into ``out`` (created if needed); return the paths."""
    out = make_dir(out)
    paths = []
    for name in ARTIFACTS:
        path = out / f"{name}.schema.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(json_schema(name), indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths
