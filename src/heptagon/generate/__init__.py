"""The generate stage: Pythia 8 + FastJet samples through the parametric detector.

Typical use::

    from heptagon.generate import GenerateOptions, generate

    summary = generate(GenerateOptions(sample="top-vs-qcd", jets=1000, seed=1, out=out))

Jet samples (:func:`generate`), event samples (:func:`generate_events`) and MLPF
element samples (:func:`generate_elements`), with their options, the process and sample
catalogues and the detector. Names are imported lazily (:mod:`heptagon.lazy`), so
``import heptagon.generate`` does not import numpy, FastJet or Pythia.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heptagon.lazy import lazy_exports

if TYPE_CHECKING:
    from heptagon.generate.detector import DetectorConfig, apply_detector
    from heptagon.generate.elements import ElementOptions, ElementSummary, generate_elements
    from heptagon.generate.events import EventSummary, generate_events
    from heptagon.generate.options import EventOptions, GenerateOptions, SampleOptions
    from heptagon.generate.processes import (
        CATALOGUE,
        EVENT_SAMPLES,
        SAMPLE_SETS,
        get_sample_set,
    )
    from heptagon.generate.run import Summary, generate

__all__ = [
    "CATALOGUE",
    "EVENT_SAMPLES",
    "SAMPLE_SETS",
    "DetectorConfig",
    "ElementOptions",
    "ElementSummary",
    "EventOptions",
    "EventSummary",
    "GenerateOptions",
    "SampleOptions",
    "Summary",
    "apply_detector",
    "generate",
    "generate_elements",
    "generate_events",
    "get_sample_set",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "detector": ("DetectorConfig", "apply_detector"),
        "elements": ("ElementOptions", "ElementSummary", "generate_elements"),
        "events": ("EventSummary", "generate_events"),
        "options": ("EventOptions", "GenerateOptions", "SampleOptions"),
        "processes": ("CATALOGUE", "EVENT_SAMPLES", "SAMPLE_SETS", "get_sample_set"),
        "run": ("Summary", "generate"),
    },
)
