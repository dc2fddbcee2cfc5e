"""Experiment metadata in one place: what a figure's label and a HEPData record say about
where the numbers come from.

heptagon's samples come from Pythia with a parametric CMS-like detector, not from CMS, so
the label is heptagon's own (``heptagon Simulation``), never an experiment's. The
centre-of-mass energy is the sample's (its manifest's ``generator.beams_ecm_gev``), not a
constant; it is left out where it is not known (user files without a manifest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heptagon.artifacts.manifest import load_manifest

__all__ = ["Experiment", "dataset_experiment"]


@dataclass(frozen=True)
class Experiment:
    """``name`` (the bold part of a figure's label) and ``status`` (after it), the
    centre-of-mass energy ``sqrt_s_tev`` [TeV] and the integrated luminosity ``lumi_fb``
    [fb^-1] the yields are normalised to (None: not known / not normalised)."""

    name: str = "heptagon"
    status: str = "Simulation"
    sqrt_s_tev: float | None = None
    lumi_fb: float | None = None

    def __post_init__(self) -> None:
        for key in ("sqrt_s_tev", "lumi_fb"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ValueError(f"{key} must be positive, got {value}")

    @classmethod
    def from_generator(
        cls, generator: Mapping[str, Any] | None, lumi_fb: float | None = None
    ) -> Experiment:
        """From a dataset manifest's ``generator`` section (its ``beams_ecm_gev``, in GeV);
        None (no manifest) gives no energy."""
        ecm = None if generator is None else generator.get("beams_ecm_gev")
        return cls(sqrt_s_tev=None if ecm is None else float(ecm) / 1000, lumi_fb=lumi_fb)

    @property
    def sqrt_s_gev(self) -> float | None:
        """The centre-of-mass energy in GeV (HEPData's unit for ``SQRT(S)``)."""
        return None if self.sqrt_s_tev is None else self.sqrt_s_tev * 1000

    @property
    def energy_text(self) -> str:
        """The right-hand label of a figure: ``"300 fb$^{-1}$ (14 TeV)"``, ``"14 TeV"``, or
        ``""`` when neither is known."""
        energy = "" if self.sqrt_s_tev is None else f"{self.sqrt_s_tev:g} TeV"
        if self.lumi_fb is None:
            return energy
        lumi = f"{self.lumi_fb:g} fb$^{{-1}}$"
        return f"{lumi} ({energy})" if energy else lumi


def dataset_experiment(files: Iterable[str | Path], lumi_fb: float | None = None) -> Experiment:
    """The experiment of the sample ``files`` come from: the energy of the heptagon dataset
    holding them (the ``manifest.json`` of the dataset dir, the parent of ``shards/``), or
    none when they are not one heptagon dataset's. ``lumi_fb`` as :class:`Experiment`'s."""
    manifests = set()
    for file in files:
        path = Path(file)
        dataset = path.parent.parent if path.parent.name == "shards" else path.parent
        manifests.add(dataset / "manifest.json")
    if len(manifests) != 1 or not (manifest := manifests.pop()).is_file():
        return Experiment(lumi_fb=lumi_fb)
    return Experiment.from_generator(load_manifest(manifest).generator, lumi_fb)
