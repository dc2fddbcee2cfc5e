"""The evaluate stage: a trained run scored on its test split, physics metrics, plots
and reports.

Typical use::

    from heptagon.evaluate import compare, evaluate

    result = evaluate(run_dir)            # RUN/eval/metrics.json, plots, report
    table = compare([run_a, run_b])

Also the event-level analysis (:func:`analyse`, :func:`expected_yields`), the DDT map
(:func:`make_ddt`, :func:`apply_ddt`) and the predictions of a model on a dataset
(:func:`predict_batches`). Names are imported lazily (:mod:`heptagon.lazy`), so
``import heptagon.evaluate`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heptagon.lazy import lazy_exports

if TYPE_CHECKING:
    from heptagon.evaluate.analysis import analyse
    from heptagon.evaluate.anomaly import anomaly_metrics
    from heptagon.evaluate.ddt import apply_ddt, make_ddt
    from heptagon.evaluate.inference import Predictions, predict_batches
    from heptagon.evaluate.report import markdown_report
    from heptagon.evaluate.run import (
        CompareResult,
        EvalResult,
        compare,
        current_evaluation,
        evaluate,
    )
    from heptagon.evaluate.yields import Yields, expected_yields

__all__ = [
    "CompareResult",
    "EvalResult",
    "Predictions",
    "Yields",
    "analyse",
    "anomaly_metrics",
    "apply_ddt",
    "compare",
    "current_evaluation",
    "evaluate",
    "expected_yields",
    "make_ddt",
    "markdown_report",
    "predict_batches",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "analysis": ("analyse",),
        "anomaly": ("anomaly_metrics",),
        "ddt": ("apply_ddt", "make_ddt"),
        "inference": ("Predictions", "predict_batches"),
        "report": ("markdown_report",),
        "run": ("CompareResult", "EvalResult", "compare", "current_evaluation", "evaluate"),
        "yields": ("Yields", "expected_yields"),
    },
)
