"""The options of the two generation commands, on one base.

:class:`GenerateOptions` (``heptagon generate``, jet samples) and :class:`EventOptions`
(``heptagon generate-events``, event samples) share :class:`SampleOptions`: the sample
name, seed, output, file format, parallelism, detector and pile-up (``docs/pileup.md``).
Every options model whose samples run the parametric detector (these two, ``sf
generate``'s, ``mlpf generate``'s and ``dqm simulate``'s source) takes
``--detector-set FIELD=VALUE`` from :class:`DetectorSetOptions`.
Each field's ``description`` is its command-line help and its default the command's
default (:mod:`heptagon.cli` builds both commands from these models), and the ``sample``
help lists the catalogues of :mod:`heptagon.generate.processes`: a new field or sample
set shows up in ``--help`` without touching the command line.

This module is light (pydantic and the catalogues only): the command line imports it to
build its help.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from heptagon.errors import ConfigError
from heptagon.generate.processes import (
    CATALOGUE,
    EVENT_SAMPLES,
    SAMPLE_SETS,
    SampleSet,
    get_event_sample,
    get_sample_set,
)
from heptagon.physics.systematics import (
    Variation,
    get_variation,
    shower_weight_settings,
    weight_variations,
)

if TYPE_CHECKING:
    from heptagon.generate.detector import DetectorConfig
    from heptagon.generate.fastsim import FastDetectorConfig
    from heptagon.generate.jets import JetSelection

__all__ = [
    "DETECTOR_SET_HELP",
    "DetectorSetOptions",
    "EventOptions",
    "GenerateOptions",
    "Mitigation",
    "SampleOptions",
]

#: pile-up mitigation of the jet inputs: none, charged-hadron subtraction, PUPPI
Mitigation = Literal["none", "chs", "puppi"]


def _jet_samples() -> str:
    return (
        f"A sample set ({' | '.join(SAMPLE_SETS)}) or one class of the catalogue "
        f"({', '.join(CATALOGUE)})."
    )


def _event_samples() -> str:
    names = [
        name if classes == (name,) else f"{name} ({', '.join(classes)})"
        for name, classes in EVENT_SAMPLES.items()
    ]
    return f"An event sample: {' | '.join(names)}."


#: the command-line help of ``--detector-set`` (commands written out by hand use it too)
DETECTOR_SET_HELP = (
    "Set a parameter of the detector, FIELD=VALUE, the value as YAML (e.g. hcal_cell=0.174, "
    "'hadron_eff_barrel=[0.5, 0.75]'); repeatable. FIELD: one of DetectorConfig's (generate "
    "--detector fast: FastDetectorConfig's) (docs/systematics.md)."
)


class DetectorSetOptions(BaseModel):
    """``--detector-set FIELD=VALUE`` (repeatable): parameters of the parametric detector
    set on the command line, for every command whose samples run it.

    A subclass names its detector's config class (:meth:`detector_config`) and the
    parameters set before the items (:meth:`preset_knobs`, e.g. a variation's); an unknown
    field, a value out of the field's range or a field set twice is a :class:`ConfigError`
    naming ``detector_set`` when the options are made."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    detector_set: list[str] | None = Field(None, description=DETECTOR_SET_HELP)

    def detector_config(self) -> type[DetectorConfig | FastDetectorConfig] | None:
        """The config class of the sample's detector (None: no detector)."""
        from heptagon.generate.detector import DetectorConfig  # numpy: not at import

        return DetectorConfig

    def preset_knobs(self) -> dict[str, Any]:
        """The detector parameters set before ``detector_set``'s (none)."""
        return {}

    @property
    def detector_knobs(self) -> dict[str, Any]:
        """The detector parameters :meth:`preset_knobs` and ``detector_set`` set (none:
        nominal); a field both set is refused."""
        from heptagon.config import yaml_value

        knobs = self.preset_knobs()
        for item in self.detector_set or ():
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise ConfigError(f"needs FIELD=VALUE, got '{item}'", key="detector_set")
            if name in knobs:
                raise ConfigError(
                    f"'{name}' is set twice (by --variation or an earlier --detector-set)",
                    key="detector_set",
                )
            knobs[name] = yaml_value(text)
        return knobs

    @model_validator(mode="after")
    def _detector_set(self) -> DetectorSetOptions:
        if not self.detector_set:
            return self
        config = self.detector_config()
        if config is None:
            raise ConfigError("sets detector parameters: needs the detector", key="detector_set")
        from pydantic import ValidationError

        knobs = self.detector_knobs
        for name in knobs:
            if name not in config.model_fields:
                raise ConfigError(f"no {config.__name__} field '{name}'", key="detector_set")
        try:
            config(**knobs)
        except ValidationError as err:
            first = err.errors()[0]
            if not first["loc"]:  # a rule across fields
                raise ConfigError(first["msg"], key="detector_set") from None
            name = ".".join(str(part) for part in first["loc"])
            raise ConfigError(
                f"{name}={knobs.get(str(first['loc'][0]))!r}: {first['msg']}", key="detector_set"
            ) from None
        return self


class SampleOptions(DetectorSetOptions):
    """What every generated sample is defined by: its name, seed and where and how it is
    written. The same seed gives the same files whatever ``jobs`` and ``scheduler``."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    sample: str = Field(description="The sample to generate.")
    seed: int = Field(ge=0, description="Random seed (same seed, same files).")
    out: Path = Field(description="Dataset directory.")
    format: Literal["parquet", "root"] = Field("parquet", description="Shard file format.")
    jobs: int = Field(1, ge=1, description="Processes (one shard each).")
    detector: Literal["full", "none"] = Field(
        "full", description="full: the CMS-like parametric detector; none: hadron level."
    )
    scheduler: str | None = Field(
        None, description="Dask scheduler address (instead of local processes)."
    )
    pileup: float | None = Field(
        None,
        ge=0,
        le=200,
        description="Mean number of pile-up interactions (Poisson); adds the pile-up "
        "branches (docs/pileup.md). 0: those branches without pile-up.",
    )
    pileup_library: int = Field(
        1000, gt=0, description="Minimum-bias library events (with --pileup)."
    )
    mitigation: Mitigation = Field(
        "none",
        description="Pile-up mitigation of the jets (and, for events, of the lepton "
        "isolation) (with --pileup).",
    )
    variation: str | None = Field(
        None,
        description="A named systematic variation (docs/systematics.md): shape ones remake "
        "the same command's generator events with the detector varied.",
    )
    weight_variations: bool = Field(
        False,
        description="Add the parton-shower weight columns weight_isr_up, ... (Pythia's "
        "UncertaintyBands; docs/systematics.md).",
    )

    @model_validator(mode="after")
    def _variation(self) -> SampleOptions:
        v = self.variation_spec()
        if v is None:
            return self
        if v.kind == "weight":
            raise ConfigError(
                f"'{v.name}' is a weight variation: use --weight-variations for its column",
                key="variation",
            )
        if v.detector and self.detector != "full":
            raise ConfigError(
                f"--variation {v.name} changes the full detector: needs --detector full",
                key="variation",
            )
        if v.pileup_scale != 1.0 and self.pileup is None:
            raise ConfigError(f"--variation {v.name} needs --pileup", key="variation")
        return self

    def variation_spec(self) -> Variation | None:
        """The sample's systematic variation (None: nominal)."""
        return None if self.variation is None else get_variation(self.variation)

    @property
    def pileup_mu(self) -> float | None:
        """The mean pile-up of the sample: ``pileup`` times the variation's scale."""
        v = self.variation_spec()
        if self.pileup is None:
            return None
        return self.pileup if v is None else self.pileup * v.pileup_scale

    def preset_knobs(self) -> dict[str, Any]:
        """The detector calibration knobs the variation sets (none: nominal)."""
        v = self.variation_spec()
        return {} if v is None else dict(v.detector)

    def detector_config(self) -> type[DetectorConfig | FastDetectorConfig] | None:
        """The config class of ``detector``'s chain (None: hadron level)."""
        if self.detector == "none":
            return None
        if self.detector == "fast":
            from heptagon.generate.fastsim import FastDetectorConfig  # numpy: not at import

            return FastDetectorConfig
        return super().detector_config()

    @property
    def weight_names(self) -> tuple[str, ...]:
        """The weight variations whose columns the sample gets."""
        return tuple(v.name for v in weight_variations()) if self.weight_variations else ()

    def generator_settings(self) -> tuple[str, ...]:
        """The Pythia settings the variation and the weight variations add."""
        v = self.variation_spec()
        extra = () if v is None else v.pythia
        return (*extra, *(shower_weight_settings() if self.weight_variations else ()))

    @model_validator(mode="after")
    def _pileup(self) -> SampleOptions:
        if self.mitigation != "none" and self.pileup is None:
            raise ConfigError(
                "--mitigation needs --pileup (--pileup 0 for a baseline without pile-up)",
                key="mitigation",
            )
        if self.pileup is not None and self.detector == "none":
            raise ConfigError(
                "--pileup needs the detector (vertex association and PUPPI use its tracks)",
                key="pileup",
            )
        return self


class GenerateOptions(SampleOptions):
    """Everything that defines a generated jet sample (``heptagon generate``). A jet
    definition or window left unset is the sample set's."""

    sample: str = Field(description=_jet_samples())
    jets: int = Field(gt=0, description="Jets per class.")
    pt_min: float | None = Field(None, ge=0, description="Lowest jet pT, GeV.")
    pt_max: float | None = Field(None, ge=0, description="Highest jet pT, GeV.")
    radius: float | None = Field(None, gt=0, le=2.0, description="Anti-kT jet radius R.")
    eta_max: float | None = Field(None, gt=0, description="Jet |eta| cut.")
    mpi: bool | None = Field(None, description="Multi-parton interactions.")
    shard_size: int = Field(5000, gt=0, description="Jets per shard.")
    detector: Literal["full", "fast", "none"] = Field(  # type: ignore[assignment]
        "full",
        description="full: the CMS-like parametric detector; fast: the cheaper FastSim "
        "chain (docs/refinement.md); none: hadron level.",
    )

    @field_validator("sample")
    @classmethod
    def _known(cls, v: str) -> str:
        get_sample_set(v)
        return v

    @model_validator(mode="after")
    def _window(self) -> GenerateOptions:
        if self.pileup is not None and self.detector == "fast":
            raise ConfigError("--pileup needs --detector full", key="pileup")
        s = self.sample_set
        lo = s.pt_min if self.pt_min is None else self.pt_min
        hi = s.pt_max if self.pt_max is None else self.pt_max
        if not 0 <= lo < hi:
            raise ConfigError(
                f"empty jet-pT window [{lo}, {hi}) GeV: need 0 <= pt-min < pt-max", key="pt_min"
            )
        return self

    @property
    def sample_set(self) -> SampleSet:
        """The sample set (or one-class set) named by ``sample``."""
        return get_sample_set(self.sample)

    def selection(self) -> JetSelection:
        """The jet definition and window: the options', else the sample set's."""
        from heptagon.generate.jets import JetSelection  # numpy and FastJet: not at import

        s = self.sample_set
        return JetSelection(
            radius=s.radius if self.radius is None else self.radius,
            pt_min=s.pt_min if self.pt_min is None else self.pt_min,
            pt_max=s.pt_max if self.pt_max is None else self.pt_max,
            eta_max=s.eta_max if self.eta_max is None else self.eta_max,
            use_rapidity=s.use_rapidity,
        )

    def use_mpi(self) -> bool:
        """Multi-parton interactions: the option, else the sample set's."""
        return self.sample_set.mpi if self.mpi is None else self.mpi


class EventOptions(SampleOptions):
    """Everything that defines a generated event sample (``heptagon generate-events``)."""

    sample: str = Field(description=_event_samples())
    events: int = Field(gt=0, description="Events per class.")
    pt_min: float = Field(25.0, ge=0, description="Jet pT threshold, GeV.")
    radius: float = Field(0.4, gt=0, le=2.0, description="Anti-kT jet radius R.")
    eta_max: float = Field(2.5, gt=0, description="Jet |eta| cut.")
    mpi: bool = Field(True, description="Multi-parton interactions.")
    shard_size: int = Field(1000, gt=0, description="Events per shard.")

    @field_validator("sample")
    @classmethod
    def _known(cls, v: str) -> str:
        get_event_sample(v)
        return v

    @property
    def classes(self) -> tuple[str, ...]:
        """The processes of the sample."""
        return get_event_sample(self.sample)
