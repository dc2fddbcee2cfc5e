"""Inference with exported models: :func:`predict` (ONNX Runtime, local) and
:func:`predict_distributed` (one Dask task per file).

Typical use::

    from heptagon.infer import predict

    written = predict("model.onnx", ["data/*.parquet"], "scores")   # one file per input

Imported eagerly, unlike the other stages' names: the function :func:`predict` shares
its name with the module :mod:`heptagon.infer.predict`, and a lazily exported name would
be shadowed by the module once that is imported.
"""

from heptagon.infer.distributed import predict_distributed
from heptagon.infer.predict import FileJob, Scorer, plan_predictions, predict, predict_file

__all__ = [
    "FileJob",
    "Scorer",
    "plan_predictions",
    "predict",
    "predict_distributed",
    "predict_file",
]
