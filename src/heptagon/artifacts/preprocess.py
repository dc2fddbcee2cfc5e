"""``preprocess.json``: weaver-core's export format, as CMSSW's ONNX jet-tag producers read
it, with heptagon's own keys beside.

weaver-core's ``--export-onnx`` writes next to its ``model.onnx`` a ``preprocess.json``
(``DataConfig.export_json``) that CMSSW reads to build a tagger's inputs: top-level
``output_names`` and ``input_names``, and per input name an object with ``var_names``,
``var_infos`` (per variable ``median``, ``norm_factor``, ``replace_inf_value``,
``lower_bound``, ``upper_bound``, ``pad``) and ``var_length``, or ``min_length`` and
``max_length`` (see ``docs/cmssw.md`` for what the producer does with them).
heptagon's file is a superset: every key above, spelled and meaning exactly as CMSSW reads
it, plus keys CMSSW ignores (``schema_version``, ``format``, ``transform``, ``label_type``,
``reweight``, ``sample`` at the top; ``kind``, ``pad_mode``, ``mask`` per input; ``auto``
per variable), so heptagon and CMSSW read the same file.

The input entries are top-level keys named by the input, as weaver writes them; in this
model they are gathered under :attr:`PreprocessFile.inputs` (an input may therefore not be
named like a top-level key). Unset optional input keys (``var_length`` or the
``min_length`` / ``max_length`` pair, ``mask``) are left out of the file, not written as
null: CMSSW takes a present ``var_length`` as the length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heptagon.artifacts.base import Artifact, Record

__all__ = ["NO_BOUND", "InputInfo", "PreprocessFile", "VarInfo"]

#: the base artifact's JSON Schema hook (it pins ``schema_version``)
_BASE_SCHEMA = Artifact.model_config.get("json_schema_extra")
#: the bound weaver writes for a variable it does not clip (CMSSW clamps to it: no clip)
NO_BOUND = 1e32


class VarInfo(Record):
    """One variable: ``clamp((x - median) * norm_factor, lower_bound, upper_bound)`` after a
    non-finite ``x`` is replaced by ``replace_inf_value``; padded slots hold ``pad``."""

    median: float = Field(description="subtracted first (heptagon's center)")
    norm_factor: float = Field(description="the multiplier (heptagon's scale, weaver's scale)")
    replace_inf_value: float = Field(0.0, description="what a NaN/inf raw value becomes")
    lower_bound: float = Field(description=f"clip below; -{NO_BOUND:g}: no clip")
    upper_bound: float = Field(description=f"clip above; {NO_BOUND:g}: no clip")
    pad: float = Field(description="the value of padded slots")
    auto: bool = Field(False, description="heptagon: median / norm_factor computed from data")


class InputInfo(Record):
    """One ONNX input: its variables in tensor order, their transform and its length."""

    var_names: list[str] = Field(min_length=1)
    var_infos: dict[str, VarInfo]
    var_length: int | None = Field(None, gt=0, description="a fixed length (weaver's key)")
    min_length: int | None = Field(None, gt=0, description="pad up to at least this")
    max_length: int | None = Field(None, gt=0, description="truncate to at most this")
    kind: Literal["particles", "entry", "mask"] = Field(
        description="heptagon: per-particle variables (batch, n_vars, length), one value per "
        "entry (batch, n_vars), or the 1/0 real-slot mask (batch, 1, length) of a particle group"
    )
    pad_mode: Literal["constant", "wrap"] = Field(
        "constant", description="heptagon: 'wrap' repeats an entry's particles into padded slots"
    )
    mask: str | None = Field(None, description="heptagon, particle groups: their mask input")

    @model_validator(mode="after")
    def _consistent(self) -> InputInfo:
        if set(self.var_infos) != set(self.var_names):
            raise ValueError("var_infos must describe exactly the var_names")
        if self.var_length is None and (self.min_length is None or self.max_length is None):
            raise ValueError("give var_length, or min_length and max_length")
        low, high = self.min_length, self.max_length
        if low is not None and high is not None and low > high:
            raise ValueError("min_length is above max_length")
        return self

    @property
    def length(self) -> int:
        """The most slots an entry fills (CMSSW: ``var_length``, else ``max_length``)."""
        length = self.var_length if self.var_length is not None else self.max_length
        assert length is not None  # the validator's rule
        return length


def _file_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """JSON Schema hook: the input entries are top-level keys of the file (any key that is
    not a field is an :class:`InputInfo`), not an ``inputs`` object."""
    base = cast(Callable[[dict[str, Any], type[BaseModel]], None], _BASE_SCHEMA)
    base(schema, cls)
    inputs = schema.get("properties", {}).pop("inputs", {})
    schema["required"] = [key for key in schema.get("required", []) if key != "inputs"]
    schema["additionalProperties"] = inputs.get("additionalProperties", False)


class PreprocessFile(Artifact):
    """The ``preprocess.json`` artifact (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_file_schema)

    SCHEMA_VERSION: ClassVar[int] = 2
    WHAT: ClassVar[str] = "preprocess.json"

    format: Literal["heptagon-preprocess"] = "heptagon-preprocess"
    transform: str = Field(description="the transform in words")
    output_names: list[str] = Field(description="the names of the output's columns, in order")
    input_names: list[str] = Field(description="the ONNX inputs (every one has an entry)")
    inputs: dict[str, InputInfo] = Field(description="the top-level entries named by input")
    label_type: Literal["simple", "custom"] | None = Field(
        description="heptagon: classes (softmax output) or regression targets (none: no labels)"
    )
    reweight: dict[str, Any] | None = Field(description="heptagon: flat reweighting tables")
    sample: dict[str, Any] = Field(description="heptagon: the entries the values came from")

    @model_validator(mode="before")
    @classmethod
    def _gather_inputs(cls, data: Any) -> Any:
        """The file's input entries (top-level keys that are not fields) -> ``inputs``."""
        if isinstance(data, dict) and "inputs" not in data:
            fields = set(cls.model_fields)
            inputs = {k: v for k, v in data.items() if k not in fields}
            data = {k: v for k, v in data.items() if k in fields} | {"inputs": inputs}
        return data

    @model_validator(mode="after")
    def _inputs_named(self) -> PreprocessFile:
        clash = set(self.inputs) & set(type(self).model_fields)
        if clash:
            raise ValueError(f"inputs {sorted(clash)} are named like top-level keys")
        missing = [name for name in self.input_names if name not in self.inputs]
        if missing:
            raise ValueError(f"input_names {missing} have no entry")
        return self

    def to_json(self) -> dict[str, Any]:
        """The file's JSON object: the input entries at the top level, unset lengths out."""
        data = self.model_dump(mode="json", exclude={"inputs"})
        for name, info in self.inputs.items():
            data[name] = info.model_dump(mode="json", exclude_none=True)
        return data
