"""Inference with exported models: :func:`heptagon.infer.predict.predict` (ONNX Runtime,
local) and :func:`heptagon.infer.distributed.predict_distributed` (one Dask task per file)."""
