"""The ``metrics.json`` numbers of a sample: :func:`binary_metrics`,
:func:`multiclass_metrics` and :func:`regression_metrics` return the typed models of
:mod:`heptagon.artifacts.metrics`.

Every quoted number carries a bootstrap uncertainty: the standard deviation over
resamples of the test set, drawn within each class (:func:`heptagon.physics.stats.resamples`);
for 1/eps_B and 1/JSD it is propagated from the spread of eps_B and the JSD."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heptagon.artifacts.metrics import (
    BinaryMetrics,
    Confusion,
    Count,
    Measured,
    MulticlassMetrics,
    RegressionMetrics,
    Rejection,
)
from heptagon.errors import DataError
from heptagon.physics.multiclass import confusion_matrix, macro_auc, present_classes
from heptagon.physics.regression import response
from heptagon.physics.roc import WorkingPoint, accuracy, roc_curve
from heptagon.physics.sculpting import mass_sculpting
from heptagon.physics.stats import (
    FloatArray,
    binary_inputs,
    bootstrap,
    event_weights,
    finite_or_none,
    resamples,
    spread,
)

__all__ = ["binary_metrics", "multiclass_metrics", "regression_metrics"]


def _key(x: float) -> str:
    return format(x, "g")


def _measured(value: float, err: float) -> Measured:
    return Measured(value=float(value), err=finite_or_none(err))


def _inverse(x: float, dx: float) -> Measured:
    """1/x with the error propagated from ``dx``; null for an undefined or zero ``x``."""
    if not (np.isfinite(x) and x > 0):
        return Measured(value=None, err=None)
    return Measured(value=1.0 / x, err=finite_or_none(dx / x**2))


@dataclass(frozen=True)
class _BinaryPoint:
    """The binary numbers of one (re)sample: what the bootstrap spreads."""

    auc: float
    accuracy: float
    background_eff: tuple[float, ...]  # at each signal efficiency
    signal_eff: tuple[float, ...]  # at each mistag rate
    jsd: tuple[float, ...]  # at each sculpting efficiency, NaN where undefined


@dataclass(frozen=True)
class _BinaryTargets:
    efficiencies: tuple[float, ...]
    mistags: tuple[float, ...]
    sculpting: tuple[float, ...]


def _binary_point(
    s: FloatArray, y: NDArray[np.bool_], w: FloatArray, mass: FloatArray | None, at: _BinaryTargets
) -> tuple[_BinaryPoint, list[WorkingPoint]]:
    """The numbers of one sample and its working points at ``at.efficiencies``."""
    roc = roc_curve(s, y, w)
    wps = [roc.at_signal_eff(e) for e in at.efficiencies]
    jsds = []
    for e in at.sculpting:
        assert mass is not None
        d = mass_sculpting(s, y, mass, w, working_point=roc.at_signal_eff(e)).jsd
        jsds.append(np.nan if d is None else d)
    point = _BinaryPoint(
        auc=roc.auc,
        accuracy=accuracy(s >= 0.5, y, w),
        background_eff=tuple(wp.background_eff for wp in wps),
        signal_eff=tuple(roc.at_background_eff(m).signal_eff for m in at.mistags),
        jsd=tuple(jsds),
    )
    return point, wps


def binary_metrics(
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    mass: ArrayLike | None = None,
    efficiencies: Sequence[float] = (0.3, 0.5),
    mistags: Sequence[float] = (0.01, 0.001),
    sculpting_efficiencies: Sequence[float] = (0.5,),
    n_boot: int = 100,
    seed: int = 0,
) -> BinaryMetrics:
    """The numbers of a binary classifier (labels 1 = signal): event counts, AUC, accuracy
    (cut at 0.5), rejection 1/eps_B with its 95% CL lower limit at each signal efficiency,
    signal efficiency at each mistag rate and, with ``mass`` (m_SD in GeV), 1/JSD at each
    sculpting efficiency. ``err`` is the bootstrap spread (``n_boot`` resamples within each
    class, seeded); unavailable numbers are None (JSON null)."""
    s, y, w = binary_inputs(scores, labels, weights)
    m = None
    if mass is not None:
        m = np.asarray(mass, dtype=np.float64)
        if m.shape != s.shape:
            raise ValueError(f"mass {m.shape} and scores {s.shape} differ in shape")
    at = _BinaryTargets(
        tuple(efficiencies), tuple(mistags), tuple(sculpting_efficiencies) if m is not None else ()
    )
    nominal, wps = _binary_point(s, y, w, m, at)
    boot = [
        _binary_point(s[i], y[i], w[i], None if m is None else m[i], at)[0]
        for i in resamples(y, n_boot=n_boot, seed=seed)
    ]

    def err(field: str) -> FloatArray:
        return spread([getattr(b, field) for b in boot])

    eps_b_err, eff_s_err, jsd_err = err("background_eff"), err("signal_eff"), err("jsd")
    return BinaryMetrics(
        n_signal=Count(raw=int(y.sum()), weighted=float(w[y].sum())),
        n_background=Count(raw=int((~y).sum()), weighted=float(w[~y].sum())),
        auc=_measured(nominal.auc, float(err("auc"))),
        accuracy=_measured(nominal.accuracy, float(err("accuracy"))),
        rejection_at_eff={
            _key(e): Rejection(**_inverse(b, db).model_dump(), lower_limit=wp.rejection_lower_limit)
            for e, b, db, wp in zip(
                at.efficiencies, nominal.background_eff, eps_b_err, wps, strict=True
            )
        },
        eff_at_mistag={
            _key(mt): _measured(v, dv)
            for mt, v, dv in zip(at.mistags, nominal.signal_eff, eff_s_err, strict=True)
        },
        jsd_inverse_at_eff={
            _key(e): _inverse(d, dd)
            for e, d, dd in zip(at.sculpting, nominal.jsd, jsd_err, strict=True)
        },
    )


def multiclass_metrics(
    probs: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    weights: ArrayLike | None = None,
    *,
    mass: ArrayLike | None = None,
    efficiencies: Sequence[float] = (0.3, 0.5),
    mistags: Sequence[float] = (0.01, 0.001),
    sculpting_efficiencies: Sequence[float] = (0.5,),
    n_boot: int = 100,
    seed: int = 0,
) -> MulticlassMetrics:
    """The numbers of a multi-class classifier (integer labels): event counts per class,
    the macro one-vs-rest AUC, the argmax accuracy, each class one-vs-rest
    (:func:`binary_metrics`) and the confusion matrix (rows = true class normalised to 1).
    Classes without entries (a subset of the classes in the sample) are listed under
    ``missing_classes`` and left out of the AUCs; at least two must be present."""
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    n_classes = len(class_names)
    if p.ndim != 2 or p.shape != (len(t), n_classes):
        raise ValueError(f"probs {p.shape} must be (n_events={len(t)}, n_classes={n_classes})")
    w = event_weights(weights, len(t))
    present = present_classes(t, n_classes, w)
    if len(present) < 2:
        found = ", ".join(class_names[c] for c in present) or "none"
        raise DataError(f"entries of two classes needed to evaluate, found {found}")
    predicted = p.argmax(axis=1)

    def values(i: NDArray[np.intp]) -> list[float]:
        return [macro_auc(p[i], t[i], w[i]), accuracy(predicted[i], t[i], w[i])]

    nominal = values(np.arange(len(t)))
    err = spread(bootstrap(values, t, n_boot=n_boot, seed=seed))
    return MulticlassMetrics(
        n_events={
            name: Count(raw=int((t == c).sum()), weighted=float(w[t == c].sum()))
            for c, name in enumerate(class_names)
        },
        auc=_measured(nominal[0], err[0]),
        accuracy=_measured(nominal[1], err[1]),
        per_class={
            name: binary_metrics(
                p[:, c],
                t == c,
                w,
                mass=mass,
                efficiencies=efficiencies,
                mistags=mistags,
                sculpting_efficiencies=sculpting_efficiencies,
                n_boot=n_boot,
                seed=seed,
            )
            for c, name in enumerate(class_names)
            if c in present
        },
        missing_classes=[name for c, name in enumerate(class_names) if c not in present],
        confusion=Confusion(
            classes=list(class_names),
            matrix=confusion_matrix(t, predicted, n_classes, w, normalize=True).tolist(),
        ),
    )


def regression_metrics(
    predicted: ArrayLike,
    true: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    n_boot: int = 100,
    seed: int = 0,
) -> RegressionMetrics:
    """The numbers of a regression: the median, IQR and resolution (IQR/2 over the median)
    of ``predicted / true``."""
    pred, tru = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    w = event_weights(weights, len(pred))

    def values(i: NDArray[np.intp]) -> list[float]:
        r = response(pred[i], tru[i], w[i])
        return [r.median, r.iqr, r.resolution]

    nominal = values(np.arange(len(pred)))
    err = spread(bootstrap(values, np.zeros(len(pred)), n_boot=n_boot, seed=seed))
    return RegressionMetrics(
        response_median=_measured(nominal[0], err[0]),
        response_iqr=_measured(nominal[1], err[1]),
        resolution=_measured(nominal[2], err[2]),
    )
