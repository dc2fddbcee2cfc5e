"""Named systematic variations: the registry every sample, evaluation and scale-factor fit
refers to by name (``docs/systematics.md``).

A variation is one of three kinds:

- **shape** (detector or pile-up): a separate sample made from the *same* generator events
  (same seed, same Pythia settings) with the detector calibration knobs of
  :class:`heptagon.generate.detector.DetectorConfig` changed (``detector``), or the mean
  pile-up scaled (``pileup_scale``): ``heptagon generate ... --variation NAME``. Its
  difference to the nominal sample is the effect of the variation, not statistical noise.
- **weight** (parton-shower scales): a per-entry weight column (``column``) from Pythia's
  ``UncertaintyBands`` (:func:`shower_weight_settings`), written beside the nominal weight
  at no extra generation cost: ``heptagon generate ... --weight-variations``.
- **generator** (an alternative tune): a separate sample with other Pythia settings
  (``pythia``), statistically independent of the nominal one even with the same seed:
  ``heptagon generate ... --variation NAME``.

Sizes follow public CMS (and Pythia) numbers where there is one (``source``); where the
detector here has no measured counterpart the size is a stated, conservative choice.
Up / down pairs share a ``group`` (the source of uncertainty in a table).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from heptagon.errors import ConfigError

__all__ = [
    "VARIATIONS",
    "WEIGHT_PREFIX",
    "Variation",
    "get_variation",
    "shower_weight_settings",
    "weight_variations",
]

#: the prefix of the weight columns of weight variations (``weight_isr_up``, ...)
WEIGHT_PREFIX = "weight_"


class Variation(BaseModel):
    """One named systematic variation (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["shape", "weight", "generator"]
    group: str = Field(description="the source of uncertainty; up / down share it")
    direction: Literal["up", "down", "alternative"]
    description: str
    size: str = Field(description="the size of the variation, in words")
    source: str = Field(description="where the size comes from")
    detector: dict[str, float] = Field(
        default_factory=dict, description="shape: DetectorConfig fields to set"
    )
    pileup_scale: float = Field(1.0, gt=0, description="shape: the pile-up mean times this")
    pythia: tuple[str, ...] = Field((), description="generator: Pythia settings added")
    shower: str | None = Field(None, description="weight: the UncertaintyBands variation")

    @property
    def column(self) -> str | None:
        """The weight column of a weight variation (None for the others)."""
        return WEIGHT_PREFIX + self.name if self.kind == "weight" else None

    def record(self) -> dict[str, Any]:
        """The variation as a manifest records it."""
        return self.model_dump(mode="json", exclude_defaults=True)


_JES = {
    "track": (
        0.01,
        "conservative: CMS's track momentum scale is known to ~0.1% from J/psi and Z -> mu mu "
        "(JINST 9 (2014) P10009); 1% covers the charged-hadron response in jets",
    ),
    "ecal": (
        0.01,
        "CMS ECAL energy scale: better than 0.5% for electrons and photons (JINST 10 (2015) "
        "P08010), ~1% for the low-energy photons in jets",
    ),
    "hcal": (
        0.03,
        "CMS single-pion response of the HCAL known to ~3% (the SinglePionHCAL source of "
        "the jet energy corrections, JINST 12 (2017) P02014)",
    ),
}
_JER_SIZE = 0.10
_JER_SOURCE = (
    "CMS jet energy resolution in data is 10-20% wider than in simulation with a few-% "
    "uncertainty (JINST 12 (2017) P02014); +-10% of each component's width"
)
_TRK_EFF = 0.05
_IP_RES = 0.10
_PILEUP = 0.046
_SHOWER_FACTOR = 2.0


def _detector_variations() -> list[Variation]:
    out = []
    for comp, (jes_size, jes_source) in _JES.items():
        knobs = (
            ("jes", "energy scale", "x", jes_size, jes_source),
            ("jer", "resolution", "width x", _JER_SIZE, _JER_SOURCE),
        )
        for knob, what, unit, size, source in knobs:
            for direction, sign in (("up", 1), ("down", -1)):
                out.append(
                    Variation(
                        name=f"{knob}_{comp}_{direction}",
                        kind="shape",
                        group=f"{knob}_{comp}",
                        direction=direction,
                        description=f"{comp.upper()} {what} {direction}",
                        size=f"{unit} {1 + sign * size:g}",
                        source=source,
                        detector={f"{knob}_{comp}": 1 + sign * size},
                    )
                )
    out.append(
        Variation(
            name="trk_eff_down",
            kind="shape",
            group="trk_eff",
            direction="down",
            description="tracking efficiency down (one-sided: tracks lost)",
            size=f"efficiency x {1 - _TRK_EFF:g}",
            source="CMS hadron tracking efficiency agrees with simulation within a few per "
            "cent (JINST 9 (2014) P10009); 5% in the dense core of jets",
            detector={"track_eff_scale": 1 - _TRK_EFF},
        )
    )
    out.append(
        Variation(
            name="ip_res_up",
            kind="shape",
            group="ip_res",
            direction="up",
            description="impact-parameter resolution worse than the quoted errors (one-sided)",
            size=f"d0 / dz smearing x {1 + _IP_RES:g}",
            source="CMS impact-parameter resolution in data and simulation agree within "
            "~10% (JINST 9 (2014) P10009)",
            detector={"ip_res_scale": 1 + _IP_RES},
        )
    )
    for direction, sign in (("up", 1), ("down", -1)):
        out.append(
            Variation(
                name=f"pileup_{direction}",
                kind="shape",
                group="pileup",
                direction=direction,
                description=f"mean pile-up {direction} (needs --pileup)",
                size=f"mu x {1 + sign * _PILEUP:g}",
                source="CMS minimum-bias cross section 69.2 mb +- 4.6% (JHEP 07 (2018) 161)",
                pileup_scale=1 + sign * _PILEUP,
            )
        )
    return out


def _shower_variations() -> list[Variation]:
    out = []
    for shower in ("isr", "fsr"):
        for direction, fac in (("up", 1 / _SHOWER_FACTOR), ("down", _SHOWER_FACTOR)):
            out.append(
                Variation(
                    name=f"{shower}_{direction}",
                    kind="weight",
                    group=shower,
                    direction=direction,
                    description=f"{shower.upper()} renormalisation scale x {fac:g} "
                    f"({'more' if direction == 'up' else 'less'} radiation)",
                    size=f"{shower}:muRfac = {fac:g}",
                    source="Pythia 8 UncertaintyBands (Mrenna, Skands, PRD 94 (2016) 074005); "
                    "the factor-2 variations CMS uses for its parton-shower weights",
                    shower=f"{shower}:muRfac={fac:g}",
                )
            )
    return out


def _generator_variations() -> list[Variation]:
    return [
        Variation(
            name="tune_a14",
            kind="generator",
            group="tune",
            direction="alternative",
            description="the ATLAS A14 tune instead of Monash 2013 (shower, MPI and colour "
            "reconnection parameters): a separate, statistically independent sample",
            size="Tune:pp = 21",
            source="ATL-PHYS-PUB-2014-021 (A14); Pythia 8 default Monash 2013 (EPJC 74 "
            "(2014) 3024)",
            pythia=("Tune:pp = 21",),
        )
    ]


#: every named variation, by name
VARIATIONS: dict[str, Variation] = {
    v.name: v for v in (*_detector_variations(), *_shower_variations(), *_generator_variations())
}


def get_variation(name: str) -> Variation:
    """The variation called ``name``; a :class:`ConfigError` listing the names otherwise."""
    try:
        return VARIATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown variation '{name}' (known: {', '.join(VARIATIONS)})", key="variation"
        ) from None


def weight_variations() -> list[Variation]:
    """The weight variations, in column order."""
    return [v for v in VARIATIONS.values() if v.kind == "weight"]


def shower_weight_settings() -> list[str]:
    """The Pythia settings that make the parton-shower weights of every weight variation
    (each variation's name is its ``UncertaintyBands`` label)."""
    entries = ", ".join(f"{v.name} {v.shower}" for v in weight_variations())
    return ["UncertaintyBands:doVariations = on", f"UncertaintyBands:List = {{{entries}}}"]
