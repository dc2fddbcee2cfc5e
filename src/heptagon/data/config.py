"""The data config: which branches become which tensors.

A superset of weaver-core 0.5.3's data config. A weaver YAML (``treename``,
``selection``, ``test_time_selection``, ``new_variables``, ``preprocess`` with ``method``,
``data_fraction`` and the ``params`` weaver writes into ``*.auto.yaml``, ``inputs`` with
``[name, subtract_by, multiply_by, clip_min, clip_max, pad_value]`` lists,
``labels: {type, value}``, ``observers``, ``monitor_variables``, ``weights`` with every
weaver key) reads unchanged, and a key weaver writes as null means its default, as in
weaver; weaver's ``branch_magic``, ``file_magic`` and ``bucketing`` are refused with an error
naming the key. heptagon adds the dict form of a variable, label expressions,
``nan_policy``, flat (per-event) input groups (no ``length``) and ``mask``.
docs/weaver.md lists where heptagon's results differ from weaver's and why.

Example::

    selection: (jet_pt > 500) & (jet_pt < 1000)
    new_variables:
      part_ptrel: part_pt / jet_pt
    inputs:
      pf_points: {length: 128, vars: [part_deta, part_dphi]}
      pf_features:
        length: 128
        vars:
          - {name: part_pt_log, center: auto, scale: auto}
          - [part_deltaR, 0.2, 4.0]          # weaver form, clipped to [-5, 5]
      jet: {vars: [jet_pt, jet_sdmass]}     # no length: one value per jet
    labels: [label_QCD, label_Tbqq]
    observers: [jet_pt, jet_sdmass]
    nan_policy: error

Standardisation is ``clip((x - center) * scale, *clip)``; ``auto`` values are computed by
:func:`heptagon.data.preprocess.compute_preprocess`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from heptagon.config import validate
from heptagon.data.expr import Expr
from heptagon.errors import ConfigError

__all__ = [
    "DataConfig",
    "InputGroup",
    "Labels",
    "ObserverRole",
    "PreprocessSpec",
    "Variable",
    "WeaverParams",
    "Weights",
    "load_config",
]

Auto = Literal["auto"]
#: the observers evaluation uses by role (:attr:`DataConfig.observer_roles`)
ObserverRole = Literal["jet_pt", "jet_eta", "jet_sdmass"]

#: weaver's defaults for a transformed variable given as a list
_WEAVER_CLIP = (-5.0, 5.0)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variable(_Model):
    """One input variable and its standardisation ``clip((x - center) * scale)``."""

    name: str
    center: float | Auto | None = None
    scale: float | Auto = 1.0
    clip: tuple[float, float] | None = None
    pad_value: float = 0.0

    @property
    def is_auto(self) -> bool:
        """Whether ``center`` or ``scale`` is computed from data."""
        return self.center == "auto" or self.scale == "auto"


class InputGroup(_Model):
    """A group of variables that becomes one tensor.

    With ``length`` the variables are jagged (per particle) and the tensor is
    ``(batch, n_vars, n_particles)``, padded per batch up to ``length``; without it they
    are one value per entry and the tensor is ``(batch, n_vars)``.
    """

    length: int | None = Field(default=None, gt=0)
    pad_mode: Literal["constant", "wrap"] = "constant"
    mask: bool = True
    vars: list[Variable] = Field(min_length=1)

    @model_validator(mode="after")
    def _flat_group_options(self) -> InputGroup:
        if self.length is None and self.pad_mode != "constant":
            raise ValueError("pad_mode needs a jagged group (set length)")
        return self


class Labels(_Model):
    """Class labels or regression targets.

    ``type: simple`` with ``value`` a list of one-hot branches (``label_QCD``...) or a map
    from class name to a boolean expression (exactly one true per entry);
    ``type: custom`` with ``value`` a map from target name to expression (regression).
    """

    type: Literal["simple", "custom"] = "simple"
    value: list[str] | dict[str, str] = Field(min_length=1)

    @model_validator(mode="after")
    def _custom_is_a_map(self) -> Labels:
        if self.type == "custom" and not isinstance(self.value, dict):
            raise ValueError("type 'custom' (regression) needs a map target: expression")
        return self

    @property
    def names(self) -> list[str]:
        """Class (or target) names: ``label_QCD`` -> ``QCD``; map keys as given."""
        if isinstance(self.value, dict):
            return list(self.value)
        return [v.removeprefix("label_") for v in self.value]

    @property
    def expressions(self) -> list[str]:
        """One expression per class / target (a branch name is an expression too)."""
        return list(self.value.values() if isinstance(self.value, dict) else self.value)


class Weights(_Model):
    """Per-entry weights: a product of precomputed branches, or flat reweighting.

    Flat reweighting histograms two variables per class (``reweight_classes``, entries of
    ``labels.value``) on the training sample; each entry is weighted by the inverse of its
    bin content so each class is flat in the two variables, classes keep the ratio of
    ``class_weights``, and the mean weight is 1. Bins with fewer than
    ``max / reweight_threshold`` entries are treated as having that many.
    ``reweight_discard_under_overflow`` (weaver's default, true): entries outside the bins
    get weight 0 and are not histogrammed; false: they count in the edge bins.
    ``reweight_basewgt``: an expression multiplied into every weight (and filling the
    histograms), as in weaver. ``reweight_hists`` (written by weaver into ``*.auto.yaml``):
    one table per class, used as they are instead of being computed; needed for weaver's
    ``reweight_method: ref``, whose tables heptagon does not compute.
    """

    use_precomputed_weights: bool = False
    weight_branches: list[str] = Field(default_factory=list)
    reweight_method: Literal["flat", "ref"] = "flat"
    reweight_vars: dict[str, list[float]] = Field(default_factory=dict)
    reweight_classes: list[str] = Field(default_factory=list)
    class_weights: list[float] = Field(default_factory=list)
    reweight_threshold: float = Field(default=10.0, gt=0)
    reweight_discard_under_overflow: bool = True
    reweight_hists: dict[str, list[list[float]]] | None = None
    reweight_basewgt: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Weights:
        if self.use_precomputed_weights:
            if not self.weight_branches:
                raise ValueError("use_precomputed_weights needs weight_branches")
            return self
        if len(self.reweight_vars) != 2:
            raise ValueError("flat reweighting needs exactly two reweight_vars")
        for name, edges in self.reweight_vars.items():
            if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"bins of '{name}' must be at least 2 increasing edges")
        if self.class_weights and len(self.class_weights) != len(self.reweight_classes):
            raise ValueError("class_weights needs one weight per reweight_classes entry")
        if self.reweight_hists is None:
            if self.reweight_method == "ref":
                raise ValueError("reweight_method 'ref' needs reweight_hists (made by weaver)")
            return self
        if list(self.reweight_hists) != self.reweight_classes:
            raise ValueError("reweight_hists needs one table per reweight_classes entry, in order")
        shape = [len(edges) - 1 for edges in self.reweight_vars.values()]
        for name, table in self.reweight_hists.items():
            if [len(table), *{len(row) for row in table}] != shape:
                raise ValueError(f"reweight_hists.{name} must be a {shape[0]} x {shape[1]} table")
        return self


class WeaverParams(_Model):
    """One variable's entry of ``preprocess.params`` as weaver writes it into ``*.auto.yaml``:
    ``clip((x - center) * scale, min, max)`` (nothing when ``center`` is null), padded to
    ``length`` with ``pad_value`` (or by repeating, ``pad_mode: wrap``)."""

    length: int | None = Field(default=None, gt=0)
    pad_mode: Literal["constant", "wrap"] = "constant"
    center: float | None
    scale: float = 1.0
    min: float = _WEAVER_CLIP[0]
    max: float = _WEAVER_CLIP[1]
    pad_value: float = 0.0


class PreprocessSpec(_Model):
    """How ``auto`` standardisation is computed (weaver's ``preprocess`` block).

    ``method: auto`` makes a weaver list variable without a ``subtract_by`` (a bare name or
    a one-element list; an explicit null stays untransformed) automatic, as in weaver,
    except variables whose name ends in ``_mask``. The sample (weaver's): the first
    ``data_fraction`` (null: all) of the entries of each training file, training split
    and selection applied, at most ``max_entries`` of them. ``params``: weaver's resolved
    parameters by variable name (an ``*.auto.yaml``); when given, they define every input
    variable's standardisation and padding and nothing is computed, as in weaver.
    """

    method: Literal["manual", "auto"] = "manual"
    data_fraction: float | None = Field(default=1.0, gt=0, le=1)
    max_entries: int = Field(default=200_000, gt=0)
    params: dict[str, WeaverParams] | None = None


class DataConfig(_Model):
    """The whole data config. Build with :func:`load_config` or ``DataConfig.model_validate``."""

    treename: str | None = None
    selection: str | None = None
    test_time_selection: str | None = None
    new_variables: dict[str, str] = Field(default_factory=dict)
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    inputs: dict[str, InputGroup] = Field(min_length=1)
    labels: Labels | None = None
    observers: list[str] = Field(default_factory=list)
    #: the branch (or new variable) that plays each role evaluation knows (efficiency maps
    #: in jet_pt / jet_eta, mass sculpting and DDT in jet_sdmass): ``{jet_sdmass: fj_sdmass}``;
    #: by default the role's own name
    observer_roles: dict[ObserverRole, str] = Field(default_factory=dict)
    monitor_variables: list[str] = Field(default_factory=list)
    weights: Weights | None = None
    nan_policy: Literal["error", "zero", "drop"] = "error"
    event_branch: str = "event"
    _exprs: dict[str, Expr] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _weaver_forms(cls, data: Any) -> Any:
        """Rewrite weaver's list forms (variables, labels) into the dict forms, resolving
        them through ``preprocess.params`` where given; a null top-level key is its default."""
        if not isinstance(data, dict):
            return data
        data = {key: value for key, value in data.items() if value is not None}
        preprocess = data.get("preprocess")  # any type: pydantic reports a wrong one
        method = preprocess.get("method", "manual") if isinstance(preprocess, dict) else "manual"
        params = preprocess.get("params") if isinstance(preprocess, dict) else None
        inputs = data.get("inputs")
        if isinstance(inputs, dict):
            data["inputs"] = {
                group: _weaver_group(group, spec, method, params)
                if isinstance(spec, dict)
                else spec
                for group, spec in inputs.items()
            }
        labels = data.get("labels")
        weaver_labels = isinstance(labels, dict) and {"type", "value"} & set(labels)
        if isinstance(labels, (list, dict)) and not weaver_labels:
            data["labels"] = {"type": "simple", "value": labels}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> DataConfig:
        if self.observers and self.monitor_variables:
            raise ValueError("set observers or monitor_variables, not both (as in weaver)")
        if self.weights is not None and not self.weights.use_precomputed_weights:
            if self.labels is None or self.labels.type != "simple":
                raise ValueError("weights: flat reweighting needs class labels")
            unknown = set(self.weights.reweight_classes) - set(self.labels.value)
            if unknown:
                raise ValueError(
                    f"weights.reweight_classes {sorted(unknown)} are not in labels.value"
                )
        return self

    def model_post_init(self, context: Any, /) -> None:
        # parse every expression once, so syntax errors surface at load time with the key
        exprs: dict[str, Expr] = {}
        for key in ("selection", "test_time_selection"):
            text = getattr(self, key)
            if text is not None:
                exprs[key] = Expr(text, key)
        for name, text in self.new_variables.items():
            exprs[f"new_variables.{name}"] = Expr(text, f"new_variables.{name}")
        if self.labels is not None:
            keys = self.labels.value if isinstance(self.labels.value, dict) else {}
            for i, text in enumerate(self.labels.expressions):
                key = f"labels.value.{list(keys)[i]}" if keys else f"labels.value.{i}"
                exprs[key] = Expr(text, key)
        if self.weights is not None:
            for i, text in enumerate(self.weights.weight_branches):
                exprs[f"weights.weight_branches.{i}"] = Expr(text, f"weights.weight_branches.{i}")
            if self.weights.reweight_basewgt is not None:
                key = "weights.reweight_basewgt"
                exprs[key] = Expr(self.weights.reweight_basewgt, key)
        self._exprs = exprs

    @property
    def expressions(self) -> dict[str, Expr]:
        """Every parsed expression of the config, by its dotted key."""
        return self._exprs

    @property
    def label_exprs(self) -> list[Expr]:
        """One parsed expression per class / regression target."""
        return [e for k, e in self.expressions.items() if k.startswith("labels.")]

    @property
    def weight_exprs(self) -> list[Expr]:
        """The parsed precomputed-weight expressions (empty for flat reweighting)."""
        return [e for k, e in self.expressions.items() if k.startswith("weights.weight_branches")]

    @property
    def basewgt_expr(self) -> Expr | None:
        """The parsed ``weights.reweight_basewgt`` of flat reweighting, if any."""
        return self.expressions.get("weights.reweight_basewgt")

    def selection_expr(self, training: bool) -> Expr | None:
        """The selection of training / validation entries, or (``training=False``) of
        test and inference entries: ``test_time_selection`` if set, as in weaver."""
        if not training and "test_time_selection" in self.expressions:
            return self.expressions["test_time_selection"]
        return self.expressions.get("selection")

    @property
    def entry_observers(self) -> list[str]:
        """The per-entry variables carried along with each entry: ``observers``, or
        weaver's ``monitor_variables`` (only one of the two may be set)."""
        return [*self.observers, *self.monitor_variables]

    @property
    def new_variable_exprs(self) -> dict[str, Expr]:
        """``new_variables`` as parsed expressions, by variable name."""
        prefix = "new_variables."
        return {
            k.removeprefix(prefix): e for k, e in self.expressions.items() if k.startswith(prefix)
        }

    @property
    def has_auto(self) -> bool:
        """Whether any variable needs ``auto`` standardisation or flat reweighting."""
        flat = (
            self.weights is not None
            and not self.weights.use_precomputed_weights
            and self.weights.reweight_hists is None
        )
        return flat or any(v.is_auto for g in self.inputs.values() for v in g.vars)


def _weaver_group(group: str, spec: dict[str, Any], method: str, params: Any) -> dict[str, Any]:
    spec = {key: value for key, value in spec.items() if value is not None}
    if isinstance(spec.get("pad_mode"), str):
        spec["pad_mode"] = spec["pad_mode"].lower()  # weaver's spelling is free
    if str(group).endswith("_mask") and spec.get("pad_mode", "constant") != "constant":
        key = f"inputs.{group}.pad_mode"
        raise ConfigError("a mask group must have pad_mode: constant (as in weaver)", key)
    if isinstance(spec.get("vars"), list):
        spec["vars"] = [
            _params_var(group, spec, v, params)
            if isinstance(params, dict)
            else _weaver_var(v, method)
            for v in spec["vars"]
        ]
    return spec


def _params_var(group: str, spec: dict[str, Any], var: Any, params: dict[str, Any]) -> Any:
    """A variable of ``inputs.<group>`` defined by its entry of ``preprocess.params``."""
    name = var if isinstance(var, str) else var[0] if isinstance(var, list) and var else None
    name = var.get("name") if isinstance(var, dict) else name
    if not isinstance(name, str):
        return var  # malformed: let pydantic report it
    key = f"preprocess.params.{name}"
    entry = params.get(name)
    if not isinstance(entry, dict):
        raise ConfigError(f"input variable '{name}' has no parameters", key)
    try:
        resolved = validate(WeaverParams, entry)
    except ConfigError as err:
        message = err.args[0].removeprefix(f"{err.key}: ")
        raise ConfigError(message, f"{key}.{err.key}" if err.key else key) from None
    if resolved.length != spec.get("length") or resolved.pad_mode != spec.get(
        "pad_mode", "constant"
    ):
        raise ConfigError(f"length / pad_mode differ from inputs.{group}", key)
    if resolved.center is None:  # weaver neither transforms nor clips
        return {"name": name, "pad_value": resolved.pad_value}
    return {
        "name": name,
        "center": resolved.center,
        "scale": resolved.scale,
        "clip": (resolved.min, resolved.max),
        "pad_value": resolved.pad_value,
    }


def _weaver_var(var: Any, method: str) -> Any:
    """``name`` or ``[name, subtract_by, multiply_by, clip_min, clip_max, pad_value]``: as
    weaver, a missing ``subtract_by`` is ``auto`` with ``method: auto`` (not for a ``_mask``
    variable), an explicit null is no transformation; ``auto`` computes the scale too."""
    if isinstance(var, str):
        var = [var]
    if not isinstance(var, list) or not var or len(var) > 6:
        return var  # dict form, or malformed: let pydantic report it
    name, center, scale, clip_min, clip_max, pad_value = [*var, None, None, None, None, None][:6]
    missing = len(var) == 1
    if missing and method == "auto" and not (isinstance(name, str) and name.endswith("_mask")):
        center = "auto"
    if center == "auto":
        scale = "auto"
    out: dict[str, Any] = {"name": name, "center": center}
    if center is not None:  # weaver transforms (and clips) only when subtract_by is set
        out["scale"] = 1.0 if scale is None else scale
        out["clip"] = (
            _WEAVER_CLIP[0] if clip_min is None else clip_min,
            _WEAVER_CLIP[1] if clip_max is None else clip_max,
        )
    if pad_value is not None:
        out["pad_value"] = pad_value
    return out


def load_config(source: str | Path | dict[str, Any]) -> DataConfig:
    """Load and validate a data config from a YAML file (or an already-parsed dict).

    Raises :class:`ConfigError` naming the dotted key of the first problem.
    """
    path: Path | None = None
    if isinstance(source, dict):
        data: Any = source
    else:
        path = Path(source)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"data config {path} not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read the data config {path} ({err})") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"a data config must be a mapping{f' (in {path})' if path else ''}")
    return validate(DataConfig, data, source=path)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error in one line: what is wrong, and where (its message spans lines)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())
