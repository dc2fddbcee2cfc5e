"""Expected yields of an event-level classifier at a luminosity: each event's cross-section
weight (``xsec_weight_pb``: the events of a process sum to its cross section in pb) times the
luminosity, divided by the fraction of the sample the evaluated split holds (one for all,
or one per process when the processes come from samples split differently), so the yields
estimate the full sample. Events are assigned to processes by the observers ``label_<process>``
(the first true one), else by their true class; the signal is the classifier's signal class.
The best cut maximises S/sqrt(B) over the signal-class score, keeping at least
``MIN_BKG`` raw background events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hist
import numpy as np
from numpy.typing import NDArray

from heptagon.errors import ConfigError
from heptagon.evaluate.inference import Predictions
from heptagon.physics.metrics import score_histograms

__all__ = ["MIN_BKG", "XSEC_WEIGHT", "Yields", "event_processes", "expected_yields"]

#: default observer holding the per-event cross-section weight [pb]
XSEC_WEIGHT = "xsec_weight_pb"
#: raw background events the best S/sqrt(B) cut keeps at least
MIN_BKG = 5
_PREFIX = "label_"


def _process_name(name: str) -> str:
    return name.removeprefix(_PREFIX)


def event_processes(pred: Predictions) -> NDArray[np.str_]:
    """Each event's process: the first ``label_<process>`` observer that is true, else the
    name of its true class (without a ``label_`` prefix)."""
    classes = np.array([_process_name(c) for c in pred.class_names])
    out = classes[np.asarray(pred.labels, dtype=np.int64)]
    flags = [k for k in pred.observers if k.startswith(_PREFIX)]
    assigned = np.zeros(len(pred), dtype=bool)
    for key in flags:
        hit = (np.asarray(pred.observers[key]) != 0) & ~assigned
        out = np.where(hit, _process_name(key), out)
        assigned |= hit
    return out


@dataclass(frozen=True)
class Yields:
    """Expected events per process at ``lumi_fb``, in the region and passing ``best_cut``
    on the signal score, with S/sqrt(B) there; ``histograms``: score histograms of the
    expected events per process (signal last)."""

    lumi_fb: float
    signal: str
    region: dict[str, float]
    passing: dict[str, float]
    best_cut: float
    s_over_sqrt_b: float
    histograms: dict[str, hist.Hist[Any]]

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` entry."""
        return {
            "lumi_fb": self.lumi_fb,
            "signal": self.signal,
            "best_cut": self.best_cut,
            "s_over_sqrt_b": self.s_over_sqrt_b,
            "processes": {
                p: {"region": self.region[p], "passing": self.passing[p]} for p in self.region
            },
        }


def expected_yields(
    pred: Predictions,
    signal: int,
    lumi_fb: float,
    *,
    weight: str = XSEC_WEIGHT,
    sample_fraction: float | Mapping[str, float] = 1.0,
    bins: int = 20,
) -> Yields:
    """Yields at ``lumi_fb`` [fb^-1] of the events in ``pred`` (class ``signal`` is the
    signal), from the per-event cross-section weight observer ``weight`` [pb], scaled by
    ``1 / sample_fraction`` (a number, or a mapping process -> fraction naming every
    process of ``pred``)."""
    if weight not in pred.observers:
        raise ConfigError(f"observer '{weight}' is not in the predictions", "weight")
    process = event_processes(pred)
    present = set(process.tolist())
    if isinstance(sample_fraction, Mapping):
        missing = sorted(present - set(sample_fraction))
        if missing:
            raise ConfigError(f"no fraction for process(es) {missing}", "sample_fraction")
        fractions = {p: float(sample_fraction[p]) for p in present}
    else:
        fractions = dict.fromkeys(present, float(sample_fraction))
    bad = {p: f for p, f in fractions.items() if not 0 < f <= 1}
    if bad:
        raise ConfigError(f"fractions must be in (0, 1], got {bad}", "sample_fraction")
    per_event = np.array([fractions[p] for p in process.tolist()], dtype=np.float64)
    expected = np.asarray(pred.observers[weight], dtype=np.float64) * lumi_fb * 1e3 / per_event
    is_sig = np.asarray(pred.labels) == signal
    score = pred.probs[:, signal]
    names = sorted(set(process[~is_sig].tolist())) + sorted(set(process[is_sig].tolist()))
    index = np.array([names.index(p) for p in process], dtype=np.int64)
    order = np.argsort(-score, kind="stable")
    s_cum = np.cumsum(np.where(is_sig[order], expected[order], 0.0))
    b_cum = np.cumsum(np.where(is_sig[order], 0.0, expected[order]))
    ok = (np.cumsum(~is_sig[order]) >= MIN_BKG) & (b_cum > 0)
    z = np.where(ok, s_cum / np.sqrt(np.where(ok, b_cum, 1.0)), 0.0)
    cut = float(score[order][int(np.argmax(z))]) if ok.any() else 0.0
    passed = score >= cut
    s_pass, b_pass = expected[passed & is_sig].sum(), expected[passed & ~is_sig].sum()
    return Yields(
        lumi_fb=lumi_fb,
        signal=_process_name(pred.class_names[signal]),
        region={p: float(expected[index == i].sum()) for i, p in enumerate(names)},
        passing={p: float(expected[(index == i) & passed].sum()) for i, p in enumerate(names)},
        best_cut=cut,
        s_over_sqrt_b=float(s_pass / np.sqrt(b_pass)) if b_pass > 0 else float("nan"),
        histograms=score_histograms(score, index, names, expected, bins=bins),
    )
