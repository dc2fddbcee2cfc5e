"""Standardisation parameters: computed once, stored in ``preprocess.json``, reused.

Every input variable is transformed as ``x' = clip((x - center) * scale, lo, hi)``, the
same at training, evaluation and (embedded in the ONNX file) inference. For ``auto``
variables, :func:`compute_preprocess` takes, on a sample of training entries (the
particles the model sees, i.e. the first ``length`` of each entry, pooled),
``center = median`` and
``scale = 1 / w`` with ``w = (q84 - q16) / 2`` the half width of the 16-84% interval,
i.e. ``scale`` is the multiplier (weaver's ``multiply_by``); a zero width gives scale 1.

``preprocess.json`` (``format: heptagon-preprocess``, ``version: 1``)::

    {
      "format": "heptagon-preprocess", "version": 1,
      "transform": "x' = clip((x - center) * scale, clip[0], clip[1]) ...",
      "inputs": {
        "<group>": {
          "length": 128 | null,            # null: one value per entry, tensor (batch, n_vars)
          "pad_mode": "constant" | "wrap", "mask": true,
          "vars": [{"name": "part_pt_log", "center": 1.7, "scale": 0.7,
                    "clip": [-5.0, 5.0] | null, "pad_value": 0.0, "auto": true}, ...]
        }, ...
      },
      "labels": {"type": "simple" | "custom" | null, "names": ["QCD", "Tbqq"]},
      "reweight": null | {"vars": [x, y], "bins": [[...], [...]], "classes": [0, 1],
                          "table": [[[...]]]},          # see heptagon.data.weights
      "sample": {"entries": 123456, "drawn_from": ["a.parquet", ...]}
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heptagon.data.config import DataConfig, InputGroup
from heptagon.data.io import expand_files, open_reader
from heptagon.data.jagged import Jagged
from heptagon.data.pipeline import iter_tables
from heptagon.data.split import Split
from heptagon.data.transform import Table, Transform
from heptagon.data.weights import FlatReweight
from heptagon.errors import ConfigError, DataError
from heptagon.io import read_json, write_json_atomic

__all__ = [
    "PREPROCESS_FORMAT",
    "PREPROCESS_VERSION",
    "GroupParams",
    "Preprocess",
    "VarParams",
    "compute_preprocess",
]

PREPROCESS_FORMAT = "heptagon-preprocess"
PREPROCESS_VERSION = 1
_TRANSFORM = (
    "x' = clip((x - center) * scale, clip[0], clip[1]) (no clip if null); auto: center = median,"
    " scale = 1 / ((q84 - q16) / 2) over a training sample; padded slots hold pad_value,"
    " masks are 1 for real particles"
)


@dataclass(frozen=True)
class VarParams:
    """Resolved standardisation of one variable."""

    name: str
    center: float
    scale: float
    clip: tuple[float, float] | None
    pad_value: float
    auto: bool = False

    def apply(self, x: Any) -> Any:
        """``clip((x - center) * scale)`` on a numpy or awkward array."""
        out = (x - self.center) * self.scale
        if self.clip is None:
            return out
        return np.minimum(np.maximum(out, self.clip[0]), self.clip[1])  # ufuncs: awkward too


@dataclass(frozen=True)
class GroupParams:
    """Resolved parameters of one input group."""

    length: int | None
    pad_mode: str
    mask: bool
    vars: tuple[VarParams, ...]


@dataclass(frozen=True)
class Preprocess:
    """Everything needed to turn raw values into the model's tensors."""

    inputs: dict[str, GroupParams]
    label_type: str | None = None
    label_names: tuple[str, ...] = ()
    reweight: FlatReweight | None = None
    sample: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: DataConfig) -> Preprocess:
        """Parameters from a config with no ``auto`` values (else use compute_preprocess)."""
        if config.has_auto:
            raise ConfigError(
                "the config has 'auto' standardisation or flat reweighting: "
                "run compute_preprocess on the training files",
                "inputs",
            )
        return _from_config(config, {}, None, {})

    def check(self, config: DataConfig) -> None:
        """Raise :class:`ConfigError` if ``config``'s inputs differ from these parameters."""
        for group, spec in config.inputs.items():
            params = self.inputs.get(group)
            if params is None:
                raise ConfigError("group not in preprocess.json", f"inputs.{group}")
            if [v.name for v in spec.vars] != [v.name for v in params.vars]:
                raise ConfigError("variables differ from preprocess.json", f"inputs.{group}.vars")
            if spec.length != params.length:
                raise ConfigError("length differs from preprocess.json", f"inputs.{group}.length")
        extra = set(self.inputs) - set(config.inputs)
        if extra:
            raise ConfigError(f"groups {sorted(extra)} of preprocess.json are missing", "inputs")

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocess.json`` content."""
        return {
            "format": PREPROCESS_FORMAT,
            "version": PREPROCESS_VERSION,
            "transform": _TRANSFORM,
            "inputs": {
                group: {
                    "length": p.length,
                    "pad_mode": p.pad_mode,
                    "mask": p.mask,
                    "vars": [
                        {
                            "name": v.name,
                            "center": v.center,
                            "scale": v.scale,
                            "clip": None if v.clip is None else list(v.clip),
                            "pad_value": v.pad_value,
                            "auto": v.auto,
                        }
                        for v in p.vars
                    ],
                }
                for group, p in self.inputs.items()
            },
            "labels": {"type": self.label_type, "names": list(self.label_names)},
            "reweight": None if self.reweight is None else self.reweight.to_dict(),
            "sample": self.sample,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "preprocess.json") -> Preprocess:
        """Inverse of :meth:`to_dict`; checks the format and version."""
        if data.get("format") != PREPROCESS_FORMAT:
            raise DataError(f"not a {PREPROCESS_FORMAT} file", source, "format")
        if data.get("version") != PREPROCESS_VERSION:
            raise DataError(
                f"version {data.get('version')} is not the supported {PREPROCESS_VERSION}",
                source,
                "version",
            )
        try:
            inputs = {
                group: GroupParams(
                    g["length"],
                    g["pad_mode"],
                    g["mask"],
                    tuple(
                        VarParams(
                            v["name"],
                            float(v["center"]),
                            float(v["scale"]),
                            None if v["clip"] is None else (v["clip"][0], v["clip"][1]),
                            float(v["pad_value"]),
                            bool(v["auto"]),
                        )
                        for v in g["vars"]
                    ),
                )
                for group, g in data["inputs"].items()
            }
            reweight = data["reweight"] and FlatReweight.from_dict(data["reweight"])
            labels = data["labels"]
        except (KeyError, TypeError, IndexError) as err:
            raise DataError(f"malformed ({err!r})", source) from None
        return cls(inputs, labels["type"], tuple(labels["names"]), reweight, data["sample"])

    def save(self, path: str | Path) -> None:
        """Write ``preprocess.json`` atomically."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Preprocess:
        """Read a ``preprocess.json``."""
        if not Path(path).exists():
            raise DataError("file not found", path)
        return cls.from_dict(read_json(path, "preprocess.json"), path)


def _group_params(
    group: str, spec: InputGroup, stats: dict[tuple[str, str], tuple[float, float]]
) -> GroupParams:
    out = []
    for v in spec.vars:
        median, width = stats.get((group, v.name), (0.0, 1.0))
        center = median if v.center == "auto" else (v.center or 0.0)
        scale = (1.0 / width if width > 0 else 1.0) if v.scale == "auto" else v.scale
        out.append(VarParams(v.name, float(center), float(scale), v.clip, v.pad_value, v.is_auto))
    return GroupParams(spec.length, spec.pad_mode, spec.mask, tuple(out))


def _from_config(
    config: DataConfig,
    stats: dict[tuple[str, str], tuple[float, float]],
    reweight: FlatReweight | None,
    sample: dict[str, Any],
) -> Preprocess:
    labels = config.labels
    weights = config.weights
    if weights is not None and weights.reweight_hists is not None and labels is not None:
        reweight = FlatReweight.from_hists(weights, list(labels.value))  # weaver's, unchanged
    return Preprocess(
        {g: _group_params(g, spec, stats) for g, spec in config.inputs.items()},
        None if labels is None else labels.type,
        () if labels is None else tuple(labels.names),
        reweight,
        sample,
    )


def compute_preprocess(
    files: Any,
    config: DataConfig,
    *,
    split: Split | None = None,
    chunk_size: int = 10_000,
    files_at_once: int = 8,
    seed: int = 0,
) -> Preprocess:
    """Compute ``auto`` standardisation and flat-reweighting tables on training entries.

    Takes units of ``files`` (paths, globs or dataset dirs) in a seeded random order until
    they hold ``config.preprocess.data_fraction`` of the entries, and reads them
    ``files_at_once`` at a time, keeping training-split entries that pass the selection,
    until ``config.preprocess.max_entries`` are collected. Raw values are used.
    """
    split = split or Split()
    paths = expand_files(files)
    units = []
    for path in paths:
        with open_reader(path, config.treename) as reader:
            units.extend(reader.units(chunk_size))
    rng = np.random.default_rng(seed)
    units = [units[i] for i in rng.permutation(len(units))]
    sizes = np.cumsum([u.stop - u.start for u in units])
    fraction = config.preprocess.data_fraction or 1.0  # null: all
    units = units[: int(np.searchsorted(sizes, fraction * sizes[-1] - 0.5)) + 1]

    weights = config.weights
    flat = (
        weights is not None
        and not weights.use_precomputed_weights
        and weights.reweight_hists is None  # weaver's tables are used as they are
    )
    extra = list(weights.reweight_vars) if flat and weights is not None else []
    raw = config.model_copy(update={"observers": [*config.observers, *extra]})
    transform = Transform(raw, None, split=split, split_name="train")
    tables, n = [], 0
    for table in iter_tables(units, transform, chunk_size, files_at_once):
        tables.append(table)
        n += len(table)
        if n >= config.preprocess.max_entries:
            break
    transform.check_selected()
    sample = Table.concatenate(tables)

    stats: dict[tuple[str, str], tuple[float, float]] = {}
    for group, spec in config.inputs.items():
        group_values = sample.inputs[group]
        matrix = group_values.values if isinstance(group_values, Jagged) else group_values
        for i, v in enumerate(spec.vars):
            if v.is_auto:
                values = matrix[:, i]
                if len(values) == 0:
                    raise DataError("no values to standardise", None, v.name)
                q16, median, q84 = np.quantile(values, [0.16, 0.5, 0.84])
                stats[(group, v.name)] = (float(median), float(q84 - q16) / 2)
    reweight = None
    if flat and weights is not None and config.labels is not None:
        x, y = (sample.observers[name] for name in extra)
        assert sample.label is not None  # flat reweighting needs labels (config check)
        reweight = FlatReweight.build(
            weights, list(config.labels.value), x, y, sample.label, base=sample.weight
        )
    info = {"entries": len(sample), "drawn_from": sorted({u.path.name for u in units})}
    return _from_config(config, stats, reweight, info)
