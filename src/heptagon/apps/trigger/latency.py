"""Measured CPU inference speed of a trigger model through ONNX Runtime: latency per jet
at batch 1 and throughput at a large batch, fp32 and post-training int8.

These are CPU figures measured on this machine, a proxy for comparing model sizes and
the effect of int8; FPGA latency is not measured here (see :mod:`.hls` for the
resource estimates).

:func:`speed_file` (``heptagon trigger speed``) takes any ONNX model with a dynamic batch
axis, every model ``heptagon export`` writes included (the BDT's int8 version is the same
tree ensemble: the dynamic quantiser only converts MatMul / Gemm / Conv weights), read like
every model loader does (:func:`heptagon.publish.onnx.read_onnx`: a bundle's checksums are
verified first).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from torch import nn

from heptagon.apps.trigger.compression import quantize_int8
from heptagon.errors import ConfigError, DataError
from heptagon.publish.onnx import OUTPUT_NAME, export_torch, file_session, make_session, read_onnx

__all__ = [
    "Speed",
    "measure_speed",
    "onnx_bytes",
    "random_inputs",
    "speed_file",
    "speed_fp32_int8",
]


def onnx_bytes(model: nn.Module, inputs: Mapping[str, NDArray[np.float32]]) -> bytes:
    """The model (softmax output ``probs``) exported to ONNX with publish's exporter,
    traced on ``inputs`` (name -> array in ``forward``'s order); batch is dynamic."""
    proto, _ = export_torch(model, tuple(inputs), dict(inputs), "softmax", 17)
    return bytes(proto.SerializeToString())


@dataclass(frozen=True)
class Speed:
    """Measured ONNX Runtime speed: median and 90% quantile of the batch-1 latency (us per
    jet) and throughput (jets/s) at ``batch`` jets per call, with ``threads`` threads."""

    latency_us: float
    latency_p90_us: float
    throughput: float
    batch: int
    threads: int


def measure_speed(
    model: bytes,
    inputs: Mapping[str, NDArray[np.float32]],
    *,
    threads: int = 1,
    repeats: int = 2000,
    min_seconds: float = 1.0,
) -> Speed:
    """Time ``model`` (ONNX bytes) on ``inputs`` (name -> array, jets along axis 0).

    Batch 1: ``repeats`` calls on successive single jets after a warm-up. Throughput: the
    whole of ``inputs`` per call, repeated for at least ``min_seconds``. Raises
    :class:`ConfigError` for fewer than one jet, repeat or thread.
    """
    _at_least_one(repeats=repeats, threads=threads)
    n = len(next(iter(inputs.values())))
    _at_least_one(batch=n)
    session = make_session(model, threads)
    singles = [{k: v[i % n : i % n + 1] for k, v in inputs.items()} for i in range(repeats)]
    for feed in singles[:50]:
        session.run([OUTPUT_NAME], feed)
    times = np.empty(repeats)
    for i, feed in enumerate(singles):
        t0 = time.perf_counter()
        session.run([OUTPUT_NAME], feed)
        times[i] = time.perf_counter() - t0
    full = dict(inputs)
    session.run([OUTPUT_NAME], full)
    calls, t0 = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - t0 < min_seconds:
        session.run([OUTPUT_NAME], full)
        calls += 1
    elapsed = time.perf_counter() - t0
    return Speed(
        latency_us=float(np.median(times) * 1e6),
        latency_p90_us=float(np.quantile(times, 0.9) * 1e6),
        throughput=calls * n / elapsed,
        batch=n,
        threads=threads,
    )


def speed_fp32_int8(
    model: bytes,
    inputs: Mapping[str, NDArray[np.float32]],
    *,
    threads: int = 1,
    repeats: int = 2000,
) -> dict[str, Speed]:
    """:func:`measure_speed` of an fp32 ONNX model and of its int8 quantisation."""
    return {
        "fp32": measure_speed(model, inputs, threads=threads, repeats=repeats),
        "int8": measure_speed(quantize_int8(model), inputs, threads=threads, repeats=repeats),
    }


def random_inputs(
    model: bytes, batch: int, particles: int, seed: int = 0
) -> dict[str, NDArray[np.float32]]:
    """Inputs of an ONNX model's shapes: the first axis ``batch``, other dynamic axes
    ``particles``; standard normal values, ones for a ``*_mask`` input. Raises
    :class:`ConfigError` for a ``batch`` or ``particles`` below one."""
    _at_least_one(batch=batch, particles=particles)
    rng = np.random.default_rng(seed)
    out = {}
    for node in onnx.load_from_string(model).graph.input:
        dims = node.type.tensor_type.shape.dim
        shape = [batch] + [d.dim_value if d.HasField("dim_value") else particles for d in dims[1:]]
        if node.name.endswith("_mask"):
            out[node.name] = np.ones(shape, dtype=np.float32)
        else:
            out[node.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def speed_file(
    path: str | Path,
    *,
    batch: int,
    particles: int,
    threads: int = 1,
    repeats: int = 2000,
    verify: bool = True,
) -> dict[str, Speed]:
    """:func:`speed_fp32_int8` of the ONNX model at ``path`` (a file or a bundle directory,
    whose checksums are verified unless ``verify`` is false) on :func:`random_inputs` of
    ``batch`` jets. Raises :class:`DataError` naming the file if it is missing, altered,
    not a valid ONNX model or not loadable by ONNX Runtime, :class:`ConfigError` for a
    ``batch``, ``particles``, ``threads`` or ``repeats`` below one."""
    _at_least_one(batch=batch, particles=particles, threads=threads, repeats=repeats)
    file, proto = read_onnx(path, verify=verify)
    model = proto.SerializeToString()
    file_session(file, threads, model)  # fails here, naming the file, if ORT cannot load it
    fixed = [
        node.name
        for node in proto.graph.input
        if node.type.tensor_type.shape.dim[:1]
        and node.type.tensor_type.shape.dim[0].HasField("dim_value")
    ]
    if fixed:
        raise DataError(
            f"inputs {fixed} have a fixed batch axis: they cannot be timed at batch 1 and {batch}",
            file,
        )
    return speed_fp32_int8(
        model, random_inputs(model, batch, particles), threads=threads, repeats=repeats
    )


def _at_least_one(**values: int) -> None:
    """Raise :class:`ConfigError` for the first of ``values`` below one."""
    for key, value in values.items():
        if value < 1:
            raise ConfigError(f"must be at least 1, got {value}", key=key)
