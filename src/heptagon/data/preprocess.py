"""Standardisation parameters: computed once, stored in ``preprocess.json``, reused.

Every input variable is transformed as ``x' = clip((x - center) * scale, lo, hi)``, the
same at training, evaluation and (embedded in the ONNX file) inference. For ``auto``
variables, :func:`compute_preprocess` takes weaver-core's definition (``AutoStandardizer``):
on the first ``data_fraction`` of the entries of each training file, after the training
selection, every value of the variable pooled (all particles of an entry),
``center = median`` and ``scale = 1 / w`` with ``w = max(p84 - median, median - p16)``
the larger half width of the 16-84% interval, i.e. ``scale`` is the multiplier (weaver's
``multiply_by``); a zero width gives scale 1. An ``auto`` variable named ``*_mask`` is
left raw, as weaver leaves it.

``preprocess.json`` is weaver-core's export format, the file CMSSW's ONNX jet-tag producers
read, with heptagon's own keys beside (:mod:`heptagon.artifacts.preprocess`,
``docs/cmssw.md``)::

    {
      "schema_version": 2, "format": "heptagon-preprocess", "transform": "...",
      "output_names": ["QCD", "Tbqq"],            # the output's columns
      "input_names": ["pf_points", "pf_features", "pf_mask"],     # the ONNX inputs
      "pf_features": {                            # one entry per input, named by it
        "var_names": ["part_pt_log", ...],
        "var_infos": {"part_pt_log": {"median": 1.7, "norm_factor": 0.7,
                                      "replace_inf_value": 0, "lower_bound": -5.0,
                                      "upper_bound": 5.0, "pad": 0.0, "auto": true}, ...},
        "min_length": 1, "max_length": 128,       # a particle group: up to ``length``
        "kind": "particles", "pad_mode": "constant", "mask": "pf_mask"
      },
      "pf_mask": {"var_names": ["pf_mask"], ..., "kind": "mask"},   # 1 real, 0 padded
      "jet": {"var_names": [...], ..., "var_length": 1, "kind": "entry"},   # per entry
      "label_type": "simple" | "custom" | null,
      "reweight": null | {"vars": [x, y], "bins": [[...], [...]], "classes": [0, 1],
                          "table": [[[...]]]},          # see heptagon.data.weights
      "sample": {"entries": 123456, "drawn_from": ["a.parquet", ...]}
    }

``median`` is ``center``, ``norm_factor`` is ``scale`` (the multiplier, as weaver's
``scale``), a variable without ``clip`` has bounds -1e32 / 1e32 (as weaver writes), ``pad``
is ``pad_value``; NaN/inf raw values never reach the transform (``nan_policy``: an error,
or 0 with ``zero``, as ``replace_inf_value``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from heptagon.artifacts.preprocess import NO_BOUND, InputInfo, PreprocessFile, VarInfo
from heptagon.data.config import DataConfig, InputGroup
from heptagon.data.io import Chunk, expand_files, open_reader
from heptagon.data.jagged import Jagged
from heptagon.data.split import Split
from heptagon.data.transform import Table, Transform
from heptagon.data.weights import FlatReweight
from heptagon.errors import ConfigError, DataError, first_line

__all__ = [
    "GroupParams",
    "Preprocess",
    "VarParams",
    "auto_params",
    "compute_preprocess",
]

_TRANSFORM = (
    "x' = clip((x - median) * norm_factor, lower_bound, upper_bound) (+-1e32: no clip); auto:"
    " median and 1 / norm_factor = max(p84 - median, median - p16) over a training sample"
    " (weaver's); padded slots hold pad; masks are 1 for real particles, 0 for padded slots"
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
    """Resolved parameters of one input group (``length`` None: one value per entry;
    ``mask``: a jagged group's model takes its ``<prefix>_mask``, never set for a flat one)."""

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

    def to_file(self, input_names: Sequence[str] | None = None) -> PreprocessFile:
        """The ``preprocess.json`` artifact. ``input_names``: the ONNX model's inputs (default:
        every group, then the masks, each sorted, as the file keeps no other order), which
        CMSSW feeds by name."""
        from heptagon.data.loader import mask_name  # the loader imports this module

        inputs: dict[str, InputInfo] = {}
        masks: dict[str, InputInfo] = {}
        for group, p in self.inputs.items():
            infos = {v.name: _var_info(v) for v in p.vars}
            if p.length is None:
                inputs[group] = InputInfo(
                    var_names=list(infos), var_infos=infos, var_length=1, kind="entry"
                )
                continue
            mask = mask_name(group) if p.mask else None
            inputs[group] = InputInfo(
                var_names=list(infos),
                var_infos=infos,
                min_length=1,
                max_length=p.length,
                kind="particles",
                pad_mode=p.pad_mode,
                mask=mask,
            )
            if mask is not None:
                one = VarInfo(
                    median=0.0,
                    norm_factor=1.0,
                    lower_bound=-NO_BOUND,
                    upper_bound=NO_BOUND,
                    pad=0.0,
                )
                masks[mask] = InputInfo(
                    var_names=[mask],
                    var_infos={mask: one},
                    min_length=1,
                    max_length=p.length,
                    kind="mask",
                )
        clash = set(inputs) & set(masks)
        if clash:
            raise ConfigError(f"groups {sorted(clash)} are named like a mask input", "inputs")
        try:
            return PreprocessFile(
                schema_version=PreprocessFile.SCHEMA_VERSION,
                transform=_TRANSFORM,
                output_names=list(self.label_names),
                input_names=list(input_names or [*sorted(inputs), *sorted(masks)]),
                inputs=inputs | masks,
                label_type=self.label_type,
                reweight=None if self.reweight is None else self.reweight.to_dict(),
                sample=self.sample,
            )
        except ValidationError as err:
            raise ConfigError(f"no preprocess.json: {first_line(err)}", "inputs") from None

    def to_dict(self, input_names: Sequence[str] | None = None) -> dict[str, Any]:
        """The ``preprocess.json`` content (see :meth:`to_file`)."""
        return self.to_file(input_names).to_json()

    @classmethod
    def from_file(cls, data: PreprocessFile) -> Preprocess:
        """The parameters of a ``preprocess.json`` artifact (its mask entries are implied by
        their groups' ``mask``)."""
        inputs = {
            group: GroupParams(
                None if info.kind == "entry" else info.length,
                info.pad_mode,
                info.mask is not None,
                tuple(_var_params(name, info.var_infos[name]) for name in info.var_names),
            )
            for group, info in data.inputs.items()
            if info.kind != "mask"
        }
        reweight = None if data.reweight is None else FlatReweight.from_dict(data.reweight)
        return cls(inputs, data.label_type, tuple(data.output_names), reweight, data.sample)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "preprocess.json") -> Preprocess:
        """Inverse of :meth:`to_dict`; a :class:`DataError` naming ``source`` and the key
        for a file of another format or version."""
        return cls.from_file(PreprocessFile.parse(data, source))

    def save(self, path: str | Path, input_names: Sequence[str] | None = None) -> None:
        """Write ``preprocess.json`` atomically (``input_names`` as :meth:`to_file`)."""
        self.to_file(input_names).write(path)

    @classmethod
    def load(cls, path: str | Path) -> Preprocess:
        """Read a ``preprocess.json``."""
        if not Path(path).exists():
            raise DataError("file not found", path)
        return cls.from_file(PreprocessFile.read(path))


def _var_info(v: VarParams) -> VarInfo:
    """weaver's / CMSSW's entry for a variable (no clip: the bounds +-1e32 weaver writes)."""
    lower, upper = (-NO_BOUND, NO_BOUND) if v.clip is None else v.clip
    return VarInfo(
        median=v.center,
        norm_factor=v.scale,
        lower_bound=lower,
        upper_bound=upper,
        pad=v.pad_value,
        auto=v.auto,
    )


def _var_params(name: str, info: VarInfo) -> VarParams:
    """Inverse of :func:`_var_info`."""
    bounds = (info.lower_bound, info.upper_bound)
    clip = None if bounds == (-NO_BOUND, NO_BOUND) else bounds
    return VarParams(name, info.median, info.norm_factor, clip, info.pad, info.auto)


def _group_params(
    group: str, spec: InputGroup, stats: dict[tuple[str, str], tuple[float, float]]
) -> GroupParams:
    """``spec``'s variables resolved; ``stats``: (center, scale) of each ``auto`` variable
    by (group, name). An ``auto`` variable named ``*_mask`` stays raw (weaver's null
    center: neither shifted, scaled nor clipped)."""
    out = []
    for v in spec.vars:
        if v.is_auto and v.name.endswith("_mask"):
            out.append(VarParams(v.name, 0.0, 1.0, None, v.pad_value))
            continue
        auto_center, auto_scale = stats.get((group, v.name), (0.0, 1.0))
        center = auto_center if v.center == "auto" else (v.center or 0.0)
        scale = auto_scale if v.scale == "auto" else v.scale
        out.append(VarParams(v.name, float(center), float(scale), v.clip, v.pad_value, v.is_auto))
    mask = spec.mask and spec.length is not None  # a flat group has no padded slots to mask
    return GroupParams(spec.length, spec.pad_mode, mask, tuple(out))


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


def _first_entries(n: int, fraction: float | None) -> int:
    """How many entries of a file of ``n`` the sample takes: weaver's ``load_range=(0,
    data_fraction)`` rule, ``max(1, trunc(fraction * n))`` (``None``: all ``n``)."""
    return n if fraction is None else max(1, math.trunc(fraction * n))


def _sample_chunks(
    paths: Sequence[Path], transform: Transform, fraction: float | None, chunk_size: int
) -> Iterator[Chunk]:
    """Chunks of the first :func:`_first_entries` entries of each of ``paths``, in order."""
    for path in paths:
        with open_reader(path, transform.config.treename) as reader:
            stop = _first_entries(reader.num_entries, fraction)
            branches = transform.branches(reader.branches)
            for unit in reader.units(chunk_size):
                if unit.start >= stop:
                    break
                for chunk in reader.read(unit, branches, chunk_size):
                    if chunk.start >= stop:
                        break
                    yield Chunk(chunk.path, chunk.start, chunk.arrays[: stop - chunk.start])


def auto_params(values: np.ndarray) -> tuple[float, float]:
    """weaver's ``AutoStandardizer`` on the pooled values of one variable: ``center`` the
    median and ``scale = 1 / max(p84 - median, median - p16)`` (``np.percentile``, in the
    values' dtype), 1 where that half width is 0."""
    low, center, high = np.percentile(values, [16, 50, 84])
    width = max(high - center, center - low)
    return float(center), 1.0 if width == 0 else float(1.0 / width)  # numpy's dtype rules


def compute_preprocess(
    files: Any,
    config: DataConfig,
    *,
    split: Split | None = None,
    chunk_size: int = 10_000,
) -> Preprocess:
    """Compute ``auto`` standardisation and flat-reweighting tables on training entries.

    The sample is weaver-core's (``AutoStandardizer``): the first
    ``config.preprocess.data_fraction`` of the entries of each of ``files`` (paths, globs
    or dataset dirs; ``max(1, trunc(fraction * n))`` of a file of ``n``, null: all), after
    the training ``selection``, and here also only the entries of ``split``'s training
    split (every entry with ``Split((1, 0, 0))``, i.e. explicit training files). Each
    ``auto`` variable pools every value of it (all particles of an entry, not only the
    first ``length``) and takes :func:`auto_params`. ``config.preprocess.max_entries``
    caps the sample (the first entries read, file by file) and changes nothing while it
    is not reached. Raw values are used.
    """
    split = split or Split()
    paths = expand_files(files)
    weights = config.weights
    flat = (
        weights is not None
        and not weights.use_precomputed_weights
        and weights.reweight_hists is None  # weaver's tables are used as they are
    )
    extra = list(weights.reweight_vars) if flat and weights is not None else []
    raw = config.model_copy(update={"observers": [*config.observers, *extra]})
    transform = Transform(raw, None, split=split, split_name="train", truncate=False)
    tables, n, read = [], 0, set()
    fraction = config.preprocess.data_fraction
    for chunk in _sample_chunks(paths, transform, fraction, chunk_size):
        table = transform(chunk)
        tables.append(table)
        read.add(chunk.path.name)
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
            if v.is_auto and not v.name.endswith("_mask"):
                values = matrix[:, i]
                if len(values) == 0:
                    raise DataError("no values to standardise", None, v.name)
                stats[(group, v.name)] = auto_params(values)
    reweight = None
    if flat and weights is not None and config.labels is not None:
        x, y = (sample.observers[name] for name in extra)
        assert sample.label is not None  # flat reweighting needs labels (config check)
        reweight = FlatReweight.build(
            weights, list(config.labels.value), x, y, sample.label, base=sample.weight
        )
    info = {"entries": len(sample), "drawn_from": sorted(read)}
    return _from_config(config, stats, reweight, info)
