"""Classifier and regression metrics: the public face of the metric modules.

Data objects and pure functions over numpy arrays, every one honouring per-event weights:

* :mod:`heptagon.physics.stats`: weights, effective counts, binomial errors and limits,
  the bootstrap;
* :mod:`heptagon.physics.roc`: ROC curves, working points, AUC, rejection, accuracy;
* :mod:`heptagon.physics.sculpting`: the background m_SD sculpting (JSD) of a cut;
* :mod:`heptagon.physics.efficiency`: efficiency maps and score histograms;
* :mod:`heptagon.physics.multiclass`: pairwise discriminant, confusion matrix, macro AUC;
* :mod:`heptagon.physics.regression`: response and resolution;
* :mod:`heptagon.physics.summaries`: the ``metrics.json`` numbers of a sample
  (typed: :mod:`heptagon.artifacts.metrics`).

Import from here or from the module; both are the same objects.
"""

from __future__ import annotations

from heptagon.physics.efficiency import EfficiencyMap, efficiency_map, score_histograms
from heptagon.physics.multiclass import confusion_matrix, macro_auc, pairwise_discriminant
from heptagon.physics.regression import Resolution, Response, resolution_in_bins, response
from heptagon.physics.roc import (
    Roc,
    WorkingPoint,
    accuracy,
    auc,
    efficiency_at_mistag,
    rejection_at_efficiency,
    roc_curve,
)
from heptagon.physics.sculpting import (
    MassSculpting,
    jsd,
    jsd_inverse_at_efficiency,
    mass_sculpting,
)
from heptagon.physics.stats import CL, bootstrap
from heptagon.physics.summaries import binary_metrics, multiclass_metrics, regression_metrics

__all__ = [
    "CL",
    "EfficiencyMap",
    "MassSculpting",
    "Resolution",
    "Response",
    "Roc",
    "WorkingPoint",
    "accuracy",
    "auc",
    "binary_metrics",
    "bootstrap",
    "confusion_matrix",
    "efficiency_at_mistag",
    "efficiency_map",
    "jsd",
    "jsd_inverse_at_efficiency",
    "macro_auc",
    "mass_sculpting",
    "multiclass_metrics",
    "pairwise_discriminant",
    "regression_metrics",
    "rejection_at_efficiency",
    "resolution_in_bins",
    "response",
    "roc_curve",
    "score_histograms",
]
