"""Shared physics foundations used by every stage: pure functions over numpy arrays.

Typical use::

    from heptagon.physics import rejection_at_efficiency, roc_curve

    roc = roc_curve(scores, is_signal, weights)          # weighted; labels 1 = signal
    print(roc.auc, rejection_at_efficiency(scores, is_signal, weights, eff=0.5)["value"])

Kinematics and particle properties (:mod:`~heptagon.physics.kinematics`,
:mod:`~heptagon.physics.pdg`), the classifier and regression metrics (every one honouring
per-event weights; grouped in :mod:`heptagon.physics.metrics`, defined in ``roc``,
``sculpting``, ``efficiency``, ``multiclass``, ``regression``, ``stats`` and
``summaries``), designing decorrelated taggers (:mod:`~heptagon.physics.ddt`), pile-up
mitigation (:mod:`~heptagon.physics.puppi`), trigger rates (:mod:`~heptagon.physics.rates`),
the experiment metadata of figures and records (:mod:`~heptagon.physics.experiment`) and
array utilities (:mod:`~heptagon.physics.arrays`).
Names are imported lazily (:mod:`heptagon.lazy`), so ``import heptagon.physics`` does not
import numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heptagon.lazy import lazy_exports

if TYPE_CHECKING:
    from heptagon.physics.ddt import DDTMap, build_ddt_map
    from heptagon.physics.efficiency import EfficiencyMap, efficiency_map
    from heptagon.physics.experiment import Experiment, dataset_experiment
    from heptagon.physics.kinematics import delta_phi, delta_r, wrap_phi
    from heptagon.physics.multiclass import confusion_matrix, macro_auc
    from heptagon.physics.pdg import charges, masses
    from heptagon.physics.puppi import MitigationConfig, puppi_weights
    from heptagon.physics.rates import (
        RateWorkingPoint,
        efficiency_at_rate,
        efficiency_of_rate,
        rate_of_efficiency,
    )
    from heptagon.physics.regression import Resolution, Response, resolution_in_bins, response
    from heptagon.physics.roc import (
        Roc,
        WorkingPoint,
        auc,
        efficiency_at_mistag,
        rejection_at_efficiency,
        roc_curve,
    )
    from heptagon.physics.sculpting import MassSculpting, mass_sculpting
    from heptagon.physics.stats import bootstrap
    from heptagon.physics.summaries import binary_metrics, multiclass_metrics, regression_metrics

__all__ = [
    "DDTMap",
    "EfficiencyMap",
    "Experiment",
    "MassSculpting",
    "MitigationConfig",
    "RateWorkingPoint",
    "Resolution",
    "Response",
    "Roc",
    "WorkingPoint",
    "auc",
    "binary_metrics",
    "bootstrap",
    "build_ddt_map",
    "charges",
    "confusion_matrix",
    "dataset_experiment",
    "delta_phi",
    "delta_r",
    "efficiency_at_mistag",
    "efficiency_at_rate",
    "efficiency_map",
    "efficiency_of_rate",
    "macro_auc",
    "mass_sculpting",
    "masses",
    "multiclass_metrics",
    "puppi_weights",
    "rate_of_efficiency",
    "regression_metrics",
    "rejection_at_efficiency",
    "resolution_in_bins",
    "response",
    "roc_curve",
    "wrap_phi",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ddt": ("DDTMap", "build_ddt_map"),
        "efficiency": ("EfficiencyMap", "efficiency_map"),
        "experiment": ("Experiment", "dataset_experiment"),
        "kinematics": ("delta_phi", "delta_r", "wrap_phi"),
        "multiclass": ("confusion_matrix", "macro_auc"),
        "pdg": ("charges", "masses"),
        "puppi": ("MitigationConfig", "puppi_weights"),
        "rates": (
            "RateWorkingPoint",
            "efficiency_at_rate",
            "efficiency_of_rate",
            "rate_of_efficiency",
        ),
        "regression": ("Resolution", "Response", "resolution_in_bins", "response"),
        "roc": (
            "Roc",
            "WorkingPoint",
            "auc",
            "efficiency_at_mistag",
            "rejection_at_efficiency",
            "roc_curve",
        ),
        "sculpting": ("MassSculpting", "mass_sculpting"),
        "stats": ("bootstrap",),
        "summaries": ("binary_metrics", "multiclass_metrics", "regression_metrics"),
    },
)
