"""Export a trained model to ONNX, checked against PyTorch, with its pre-processing inside.

:func:`export_onnx` writes one self-contained file: the network, its output turned into
probabilities (one output, ``probs`` unless named otherwise, e.g. ``softmax`` as weaver and
CMSSW's ParT producers call it: softmax over the classes for a classifier, the raw output
for a regression), and in ``metadata_props`` everything :mod:`heptagon.infer.predict` needs to
score raw ROOT / Parquet files with nothing but the file:

=====================  =============================================================
key                    value
=====================  =============================================================
``format``             ``heptagon-onnx``
``format_version``     ``1``
``heptagon_version``   the heptagon version that exported it
``model_name``         the registry name (``particlenet-lite``, ``bdt`` ...)
``input_names``        JSON list: the ONNX inputs in order (data-config group names,
                       masks as ``pf_mask``)
``input_dims``         JSON map group -> number of variables (as given to ``build_model``)
``class_names``        JSON list: one name per ``probs`` column
``output_activation``  ``softmax`` or ``none``
``preprocess``         the ``preprocess.json`` content (standardisation, lengths, pads):
                       weaver's export format, which CMSSW reads (``docs/cmssw.md``)
``data_config``        the data config as JSON (branch names, ``new_variables``, tree
                       name, NaN policy: what reading a raw file takes beyond
                       ``preprocess.json``)
``ddt``                optional: the DDT map as JSON (:mod:`heptagon.physics.ddt`);
                       predict then writes ``ddt_score``
``checkpoint_sha256``  optional: the sha256 of the checkpoint the weights come from
                       (``heptagon publish`` re-exports when the run's best checkpoint
                       has another)
=====================  =============================================================

Inputs are float32, jagged groups ``(batch, n_vars, particles)`` and masks
``(batch, 1, particles)`` with dynamic ``batch`` and ``<prefix>_particles`` axes, flat
groups ``(batch, n_vars)``; the output is float32 ``(batch, n_classes)``.

Before anything is written the export is checked: ``onnx.checker``, then ONNX Runtime
against PyTorch on real jets (the ``check_inputs`` batches) at batch 1 and 256, at two
particle lengths (as given, and with zero-padded slots appended), and with jets cut down
to a single real particle; every score must be finite and within ``tolerance`` (1e-5) of
PyTorch's. A failure raises :class:`~heptagon.errors.ExportError` naming the case.

A model is read back (:func:`read_onnx`, :func:`load_onnx`) from its file or from a bundle
directory; a model whose directory holds a ``SHA256SUMS`` (a bundle) is only read after
the bundle's checksums are verified (:mod:`heptagon.publish.sums`), unless
``verify=False``.

Torch models go through the TorchScript exporter (``dynamo=False``; the dynamo exporter
needs ``onnxscript`` and exports at opset 18+), fit/predict models holding an XGBoost
``booster`` (the BDT) through ``onnxmltools``.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from google.protobuf.message import DecodeError
from torch import nn

from heptagon import __version__
from heptagon.cpu import thread_count
from heptagon.data.config import DataConfig
from heptagon.data.loader import mask_name
from heptagon.data.preprocess import Preprocess
from heptagon.errors import DataError, ExportError, first_line
from heptagon.io import atomic_path
from heptagon.physics.ddt import DDTMap
from heptagon.publish.sums import SUMS_FILE, verify_sums

__all__ = [
    "CHECKPOINT_KEY",
    "FORMAT",
    "FORMAT_VERSION",
    "ONNX_NAME",
    "OUTPUT_NAME",
    "PREPROCESS_NAME",
    "ExportReport",
    "OnnxModel",
    "check_export",
    "check_parity",
    "export_onnx",
    "export_torch",
    "file_session",
    "load_onnx",
    "make_session",
    "model_file",
    "onnx_model",
    "read_onnx",
]

FORMAT = "heptagon-onnx"
FORMAT_VERSION = "1"
#: the metadata key of the source checkpoint's sha256
CHECKPOINT_KEY = "checkpoint_sha256"
#: the model's file name in a run dir and a bundle
ONNX_NAME = "model.onnx"
#: the default name of an export's one output (``export_onnx(output_name=...)``)
OUTPUT_NAME = "probs"
#: the pre-processing file written beside the model (CMSSW's ``preprocess_json``)
PREPROCESS_NAME = "preprocess.json"
#: extra zero-padded slots appended for the padded parity cases
_EXTRA_SLOTS = 16
_CHECK_BATCH = 256
#: the highest opset onnxmltools' XGBoost converter accepts
_ONNXMLTOOLS_MAX_OPSET = 15

#: what ONNX Runtime raises (its exceptions derive from Exception only)
_ORT_ERRORS = (
    ort.capi.onnxruntime_pybind11_state.Fail,
    ort.capi.onnxruntime_pybind11_state.InvalidArgument,
    ort.capi.onnxruntime_pybind11_state.InvalidGraph,
    ort.capi.onnxruntime_pybind11_state.NotImplemented,
    ort.capi.onnxruntime_pybind11_state.RuntimeException,
)

Activation = Literal["softmax", "none"]
Tensors = Mapping[str, torch.Tensor | np.ndarray]


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and how it was checked.

    ``max_abs_diff`` maps each parity case (``batch256_len64``, ``batch1_single_particle``
    ...) to the largest ``|ONNX Runtime - PyTorch|`` over its ``probs``.
    """

    path: Path
    preprocess_path: Path
    exporter: str
    opset: int
    input_names: tuple[str, ...]
    class_names: tuple[str, ...]
    max_abs_diff: dict[str, float]
    tolerance: float


@dataclass(frozen=True)
class OnnxModel:
    """A heptagon ONNX export and the metadata read back from it (see the module doc)."""

    path: Path
    model_name: str
    heptagon_version: str
    input_names: tuple[str, ...]
    input_dims: dict[str, int]
    class_names: tuple[str, ...]
    output_activation: Activation
    preprocess: Preprocess
    data_config: DataConfig
    output_name: str = OUTPUT_NAME
    ddt: DDTMap | None = None
    checkpoint_sha256: str | None = None

    def session(self, threads: int | None = None) -> ort.InferenceSession:
        """An ONNX Runtime session on the file (see :func:`make_session`); raises
        :class:`DataError` naming the file if ONNX Runtime cannot load it."""
        return file_session(self.path, threads)


def make_session(model: str | bytes, threads: int | None = None) -> ort.InferenceSession:
    """A CPU ONNX Runtime session with every graph optimisation and ``threads`` intra-op
    threads (None: :func:`heptagon.cpu.thread_count`, the CPU affinity lowered to the
    cgroup CPU quota and to the cores other work leaves free; ONNX Runtime's own default
    reads none of them)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads or thread_count()
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def file_session(
    path: Path, threads: int | None = None, model: bytes | None = None
) -> ort.InferenceSession:
    """:func:`make_session` on ``model`` (default: the file at ``path``); raises
    :class:`DataError` naming ``path`` if ONNX Runtime cannot load it."""
    try:
        return make_session(str(path) if model is None else model, threads)
    except _ORT_ERRORS as err:
        raise DataError(f"ONNX Runtime cannot load the model ({err})", path) from None


class _Probs(nn.Module):
    """The model with its output turned into ``probs``."""

    def __init__(self, model: nn.Module, activation: Activation) -> None:
        super().__init__()
        self.model, self.activation = model, activation

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.model(*inputs)
        return torch.softmax(out, dim=1) if self.activation == "softmax" else out


def export_torch(
    model: nn.Module,
    input_names: tuple[str, ...],
    sample: dict[str, np.ndarray],
    activation: Activation,
    opset: int,
    output_name: str = OUTPUT_NAME,
) -> tuple[onnx.ModelProto, Callable[[dict[str, np.ndarray]], np.ndarray]]:
    """TorchScript-exporter ONNX of the model (its one output named ``output_name``), and
    the PyTorch reference it is checked on."""
    wrapped = _Probs(model, activation).eval()
    args = tuple(torch.from_numpy(sample[name]) for name in input_names)
    axes: dict[str, dict[int, str]] = {
        name: {0: "batch", 2: f"{name.split('_', 1)[0]}_particles"}
        if sample[name].ndim == 3
        else {0: "batch"}
        for name in input_names
    }
    axes[output_name] = {0: "batch"}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # the TorchScript exporter announces its deprecation; the dynamo one needs
        # onnxscript and opset >= 18 (see reference/toolchain.md)
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning
        )
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        # torch's own modules (nn.LSTM checks its input size in Python); a model's own
        # trace-unsafe code still warns, and the parity check below catches its effect
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.")
        # an LSTM's batch-size caveat: the parity check runs batch 1 and 256
        warnings.filterwarnings(
            "ignore", "Exporting a model to ONNX with a batch_size", UserWarning
        )
        try:
            file = Path(tmp) / "model.onnx"
            torch.onnx.export(
                wrapped,
                args,
                file,
                input_names=list(input_names),
                output_names=[output_name],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        except RuntimeError as err:  # OnnxExporterError and unsupported operators
            raise ExportError(f"torch.onnx.export failed: {err}") from err
        proto = onnx.load_model(file)
    wrapped.eval()  # the exporter restores the wrapper's own (training) mode
    return proto, _reference(model, input_names, activation)


def _reference(
    model: Any, input_names: tuple[str, ...], activation: Activation
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """What an export of ``model`` must compute: PyTorch (in eval mode) or the BDT's own
    ``predict``, with the output activation."""
    if isinstance(model, nn.Module):
        wrapped = _Probs(model, activation).eval()

        def run_torch(inputs: dict[str, np.ndarray]) -> np.ndarray:
            with torch.no_grad():
                out = wrapped(*(torch.from_numpy(inputs[name]) for name in input_names))
            return np.asarray(out.numpy(), dtype=np.float32)

        return run_torch

    def run_predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        out = torch.from_numpy(np.asarray(model.predict(inputs), dtype=np.float32))
        return np.asarray((torch.softmax(out, 1) if activation == "softmax" else out).numpy())

    return run_predict


def _is_xgboost(booster: Any) -> bool:
    """Whether ``booster`` is an XGBoost booster (without importing xgboost needlessly)."""
    return type(booster).__module__.startswith("xgboost") and type(booster).__name__ == "Booster"


def _export_xgboost(
    model: Any,
    input_names: tuple[str, ...],
    n_features: int,
    activation: Activation,
    opset: int,
    output_name: str,
) -> tuple[onnx.ModelProto, Callable[[dict[str, np.ndarray]], np.ndarray]]:
    """onnxmltools ONNX of ``model.booster`` (an XGBoost booster), output renamed
    ``output_name``."""
    if len(input_names) != 1:
        raise ExportError(f"a BDT takes one flat input group, this one takes {input_names}")
    try:
        from onnxmltools.convert import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as err:
        raise ExportError("exporting a BDT needs onnxmltools: pip install onnxmltools") from err
    booster = model.booster
    best = getattr(booster, "best_iteration", None)
    if best is not None:  # early stopping: predict() uses the trees up to the best round
        booster = booster[: best + 1]
    try:
        proto = convert_xgboost(
            booster,
            initial_types=[(input_names[0], FloatTensorType([None, n_features]))],
            target_opset=min(opset, _ONNXMLTOOLS_MAX_OPSET),
        )
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as err:
        raise ExportError(f"onnxmltools could not convert the booster: {err}") from err
    # the graph is one ai.onnx.ml tree ensemble; declare the default domain at ``opset``
    imports = [(e.domain, e.version) for e in proto.opset_import if e.domain not in ("", "ai.onnx")]
    del proto.opset_import[:]
    proto.opset_import.extend(
        onnx.helper.make_opsetid(domain, v) for domain, v in [*imports, ("", opset)]
    )
    outputs = list(proto.graph.output)
    # a classifier gives (label, probabilities); a regressor one prediction
    kept = outputs[-1]
    for out in outputs[:-1]:
        proto.graph.output.remove(out)
    for node in proto.graph.node:
        node.output[:] = [output_name if o == kept.name else o for o in node.output]
    kept.name = output_name
    return proto, _reference(model, input_names, activation)


def _pad_values(preprocess: Preprocess, name: str, n_vars: int) -> np.ndarray:
    """Per-variable value of padded slots of input ``name`` (masks and unknown groups: 0)."""
    params = preprocess.inputs.get(name)
    if params is None:
        return np.zeros(n_vars, dtype=np.float32)
    return np.array([v.pad_value for v in params.vars], dtype=np.float32)


def _pad_to(x: np.ndarray, length: int, pad: np.ndarray) -> np.ndarray:
    """``(B, C, P)`` padded with ``pad`` (per variable) or cut to ``length`` slots."""
    out = np.empty((*x.shape[:2], length), dtype=np.float32)
    out[...] = pad[None, :, None]
    keep = min(length, x.shape[2])
    out[:, :, :keep] = x[:, :, :keep]
    return out


def _parity_cases(
    batches: Sequence[Tensors], input_names: tuple[str, ...], preprocess: Preprocess
) -> dict[str, dict[str, np.ndarray]]:
    """The inputs ONNX Runtime and PyTorch are compared on, by case name."""
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in input_names}
    for batch in batches:
        for name in input_names:
            if name not in batch:
                raise ExportError(f"check_inputs lack input '{name}' (they hold {sorted(batch)})")
            value = batch[name]
            arrays[name].append(
                np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value, np.float32)
            )
    if not arrays[input_names[0]]:
        raise ExportError("no check_inputs: parity needs real batches from the data loader")
    jagged = [name for name in input_names if arrays[name][0].ndim == 3]
    pads = {name: _pad_values(preprocess, name, arrays[name][0].shape[1]) for name in jagged}
    length = max((a.shape[2] for name in jagged for a in arrays[name]), default=0)
    merged = {
        name: np.concatenate([_pad_to(a, length, pads[name]) if name in pads else a for a in parts])
        for name, parts in arrays.items()
    }
    n = len(merged[input_names[0]])
    full = {name: a[np.arange(_CHECK_BATCH) % n] for name, a in merged.items()}
    cases = {}
    for size in (_CHECK_BATCH, 1):
        if not jagged:
            cases[f"batch{size}"] = {name: a[:size] for name, a in full.items()}
        for slots in (length, length + _EXTRA_SLOTS) if jagged else ():
            cases[f"batch{size}_len{slots}"] = {
                name: _pad_to(a[:size], slots, pads[name]) if name in pads else a[:size]
                for name, a in full.items()
            }
    masks = [name for name in jagged if name == mask_name(name)]
    if masks:  # the first jets cut down to the first slot of each group, amid padding
        # each group keeps its own mask of that slot (real for the particles of a loader
        # batch; a jet without secondary vertices has none in its SV group)
        single = {
            name: _pad_to(a[:, :, :1], length + _EXTRA_SLOTS, pads[name]) if name in pads else a
            for name, a in full.items()
        }
        cases[f"batch{_CHECK_BATCH}_single_particle"] = single
        cases["batch1_single_particle"] = {name: a[:1] for name, a in single.items()}
    return cases


def _check(
    session: ort.InferenceSession,
    reference: Callable[[dict[str, np.ndarray]], np.ndarray],
    cases: dict[str, dict[str, np.ndarray]],
    n_outputs: int,
    tolerance: float,
) -> dict[str, float]:
    """Max |ONNX Runtime - PyTorch| per case; raises ExportError past ``tolerance``."""
    diffs = {}
    for case, inputs in cases.items():
        try:
            (got,) = session.run(None, inputs)  # an export has one output
        except _ORT_ERRORS as err:
            raise ExportError(f"ONNX Runtime failed on case '{case}': {err}") from err
        want = reference(inputs)
        if got.shape != want.shape or got.shape[-1] != n_outputs:
            raise ExportError(
                f"case '{case}': ONNX output shape {got.shape}, PyTorch {want.shape}, "
                f"expected {n_outputs} outputs on the last axis"
            )
        if not np.isfinite(got).all() or not np.isfinite(want).all():
            raise ExportError(
                f"case '{case}': non-finite scores (ONNX Runtime {int((~np.isfinite(got)).sum())},"
                f" PyTorch {int((~np.isfinite(want)).sum())} entries)"
            )
        diff = float(np.abs(got.astype(np.float64) - want).max())
        if diff > tolerance:
            raise ExportError(
                f"case '{case}': ONNX Runtime and PyTorch differ by up to {diff:.3g} "
                f"(tolerance {tolerance:g})"
            )
        diffs[case] = diff
    return diffs


def _activation(preprocess: Preprocess) -> Activation:
    """A classifier's softmax, or none for a regression."""
    return "softmax" if preprocess.label_type == "simple" else "none"


def export_onnx(
    model: Any,
    input_names: Sequence[str],
    input_dims: Mapping[str, int],
    preprocess: Preprocess,
    class_names: Sequence[str],
    path: str | Path,
    *,
    data_config: DataConfig,
    model_name: str,
    check_inputs: Sequence[Tensors],
    opset: int = 17,
    tolerance: float = 1e-5,
    ddt: DDTMap | None = None,
    checkpoint_sha256: str | None = None,
    output_name: str = OUTPUT_NAME,
    activation: Activation | None = None,
) -> ExportReport:
    """Export ``model`` to ONNX at ``path`` (and ``preprocess.json`` beside it), checked.

    ``model``: a torch module taking ``input_names`` in order and returning
    ``(batch, len(class_names))`` logits (or regression outputs), or a fit/predict model
    holding a trained XGBoost ``booster`` with one flat input group (the BDT).
    ``check_inputs``: real batches as the model takes them (``Batch.tensors()`` of the
    data loader), at least one; they are tiled to 256 jets if fewer.
    ``data_config``: the config the model was trained with (embedded to read raw files).
    ``ddt``: a DDT map to carry in the metadata; ``checkpoint_sha256``: the sha256 of the
    checkpoint ``model``'s weights were loaded from, recorded likewise.
    ``output_name``: the name of the one output (``probs``; weaver and CMSSW's ParT
    producers call it ``softmax``).
    The output is a softmax over ``class_names`` unless ``preprocess`` describes a
    regression (``label_type == "custom"``) or ``activation`` says otherwise (``none``: an
    anomaly detector's score, :class:`heptagon.models.autoencoder.AnomalyScore`). Nothing
    is written unless every check passes; the model's train/eval mode is left as it was.
    ``preprocess.json`` is the file CMSSW reads (:meth:`Preprocess.to_file` with the
    model's ``input_names``).
    """
    path = Path(path)
    names = tuple(input_names)
    activation = activation or _activation(preprocess)
    preprocess.check(data_config)
    cases = _parity_cases(check_inputs, names, preprocess)
    sample = cases[next(c for c in cases if c.startswith("batch1"))]  # traced: one jet
    was_training = isinstance(model, nn.Module) and model.training
    try:
        proto, reference, exporter = _convert(model, names, sample, activation, opset, output_name)
        diffs = _checked(proto, reference, cases, len(class_names), tolerance)
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    proto.producer_name, proto.producer_version = "heptagon", __version__
    proto.doc_string = (
        f"heptagon {model_name}: inputs {', '.join(names)} (float32; see metadata 'preprocess'"
        f" for how they are built from raw branches), output '{output_name}' ({activation})"
        f" over {', '.join(class_names)}"
    )
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "heptagon_version": __version__,
        "model_name": model_name,
        "input_names": json.dumps(list(names)),
        "input_dims": json.dumps(dict(input_dims)),
        "class_names": json.dumps(list(class_names)),
        "output_activation": activation,
        "preprocess": json.dumps(preprocess.to_dict(names), sort_keys=True),
        "data_config": json.dumps(data_config.model_dump(mode="json"), sort_keys=True),
    }
    if ddt is not None:
        meta["ddt"] = json.dumps(ddt.to_dict())
    if checkpoint_sha256 is not None:
        meta[CHECKPOINT_KEY] = checkpoint_sha256
    onnx.helper.set_model_props(proto, meta)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, tmp)
    preprocess_path = path.parent / PREPROCESS_NAME
    preprocess.save(preprocess_path, names)
    return ExportReport(
        path, preprocess_path, exporter, opset, names, tuple(class_names), diffs, tolerance
    )


def _convert(
    model: Any,
    names: tuple[str, ...],
    sample: dict[str, np.ndarray],
    activation: Activation,
    opset: int,
    output_name: str,
) -> tuple[onnx.ModelProto, Callable[[dict[str, np.ndarray]], np.ndarray], str]:
    """The ONNX of a torch module (left in eval mode) or a BDT, the reference it is checked
    on, and the exporter's name."""
    if isinstance(model, nn.Module):
        proto, reference = export_torch(model.eval(), names, sample, activation, opset, output_name)
        return proto, reference, f"torch.onnx (TorchScript) {torch.__version__}"
    if _is_xgboost(getattr(model, "booster", None)):
        n_features = sample[names[0]].shape[1]
        proto, reference = _export_xgboost(model, names, n_features, activation, opset, output_name)
        return proto, reference, f"onnxmltools {version('onnxmltools')}"
    raise ExportError(
        f"cannot export a {type(model).__name__}: neither a torch module nor a model with "
        "a trained XGBoost booster"
    )


def check_parity(
    proto: onnx.ModelProto,
    model: Any,
    input_names: Sequence[str],
    preprocess: Preprocess,
    n_outputs: int,
    check_inputs: Sequence[Tensors],
    tolerance: float = 1e-5,
    activation: Activation | None = None,
) -> dict[str, float]:
    """The checks of :func:`export_onnx` on an existing export ``proto`` of ``model``:
    ``onnx.checker``, ONNX Runtime loads it, and its ``probs`` match ``model``'s on the
    parity cases built from ``check_inputs``. Returns the max |diff| per case; raises
    :class:`ExportError` naming the failed check. The model's mode is left as it was."""
    names = tuple(input_names)
    activation = activation or _activation(preprocess)
    cases = _parity_cases(check_inputs, names, preprocess)
    was_training = isinstance(model, nn.Module) and model.training
    try:
        return _checked(proto, _reference(model, names, activation), cases, n_outputs, tolerance)
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)


def _checked(
    proto: onnx.ModelProto,
    reference: Callable[[dict[str, np.ndarray]], np.ndarray],
    cases: dict[str, dict[str, np.ndarray]],
    n_outputs: int,
    tolerance: float,
) -> dict[str, float]:
    """``onnx.checker``, then the parity cases on an ONNX Runtime session."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ExportError(f"onnx.checker rejects the export: {err}") from err
    try:
        session = make_session(proto.SerializeToString())
    except _ORT_ERRORS as err:
        raise ExportError(f"ONNX Runtime cannot load the export: {err}") from err
    return _check(session, reference, cases, n_outputs, tolerance)


def check_export(
    proto: onnx.ModelProto,
    reference: Callable[[dict[str, np.ndarray]], np.ndarray],
    cases: Mapping[str, dict[str, np.ndarray]],
    n_outputs: int,
    tolerance: float = 1e-5,
) -> dict[str, float]:
    """The checks of :func:`export_onnx` for an export made elsewhere (MLPF's per-element
    outputs): ``onnx.checker``, ONNX Runtime loads it, and on each named case of inputs its
    one output has ``reference``'s shape (``n_outputs`` on the last axis), is finite and
    within ``tolerance`` of it. Returns the max |diff| per case; raises
    :class:`ExportError` naming the failed check."""
    return _checked(proto, reference, dict(cases), n_outputs, tolerance)


def model_file(path: str | Path, *, verify: bool = True) -> Path:
    """The ONNX file ``path`` names: the file itself, or ``model.onnx`` in a directory (a
    bundle). When its directory holds a ``SHA256SUMS`` the bundle is verified first (unless
    ``verify`` is false, :func:`heptagon.publish.sums.verify_sums`). Raises
    :class:`DataError` naming the file that is missing or fails the checksums."""
    path = Path(path)
    if path.is_dir():
        path = path / ONNX_NAME
    if not path.is_file():
        raise DataError("model file not found", path)
    if verify and (path.parent / SUMS_FILE).is_file():
        verify_sums(path.parent, path.name)
    return path


def _uses_external_data(graph: onnx.GraphProto) -> bool:
    """Whether any tensor of ``graph`` or its subgraphs (initialisers, constant attributes)
    is stored in an external file."""
    tensors = [*graph.initializer, *(s.values for s in graph.sparse_initializer)]
    subgraphs: list[onnx.GraphProto] = []
    for node in graph.node:
        for attr in node.attribute:
            tensors += [attr.t, *attr.tensors]
            subgraphs += [attr.g, *attr.graphs]
    external = onnx.TensorProto.EXTERNAL
    return any(t.data_location == external for t in tensors) or any(
        _uses_external_data(g) for g in subgraphs if g.node
    )


def read_onnx(path: str | Path, *, verify: bool = True) -> tuple[Path, onnx.ModelProto]:
    """The ONNX file at ``path`` (see :func:`model_file`) and its parsed model, accepted by
    ``onnx.checker``. Raises :class:`DataError` naming the file for a missing, unverified,
    unreadable, empty or invalid model."""
    path = model_file(path, verify=verify)
    try:
        proto = onnx.load_model(path, format="protobuf", load_external_data=False)
    except (DecodeError, OSError, ValueError, RuntimeError) as err:
        raise DataError(f"not an ONNX model ({type(err).__name__}: {err})", path) from None
    if not proto.graph.node:
        raise DataError("not an ONNX model (no graph: empty, truncated or another format)", path)
    if _uses_external_data(proto.graph):
        raise DataError(
            "the model keeps tensors in external files, which heptagon exports never do "
            "(refused: they could point anywhere on this machine)",
            path,
        )
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        first = first_line(err)
        raise DataError(f"not a valid ONNX model (onnx.checker: {first})", path) from None
    return path, proto


def load_onnx(path: str | Path, *, verify: bool = True) -> OnnxModel:
    """Read a heptagon ONNX export's metadata back from its file or bundle directory (see
    :func:`read_onnx`, which verifies a bundle's checksums unless ``verify`` is false).
    Raises :class:`DataError` for a file that is missing, altered, not ONNX, or not
    exported by heptagon."""
    return onnx_model(*read_onnx(path, verify=verify))


def onnx_model(path: Path, proto: onnx.ModelProto) -> OnnxModel:
    """The heptagon metadata of ``proto``, the model read from ``path`` by
    :func:`read_onnx`. Raises :class:`DataError` naming ``path`` for a model that was not
    exported by heptagon or whose metadata is malformed."""
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get("format") != FORMAT:
        raise DataError(
            f"not a heptagon ONNX export (no '{FORMAT}' metadata; export it with heptagon export)",
            path,
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"format version {meta.get('format_version')} is not the supported {FORMAT_VERSION}",
            path,
        )
    outputs = [out.name for out in proto.graph.output]
    if len(outputs) != 1:
        raise DataError(f"a heptagon export has one output, this one has {outputs}", path)
    try:
        activation = meta["output_activation"]
        if activation not in ("softmax", "none"):
            raise ValueError(f"unknown output_activation {activation!r}")
        return OnnxModel(
            path=path,
            model_name=meta["model_name"],
            heptagon_version=meta["heptagon_version"],
            input_names=tuple(json.loads(meta["input_names"])),
            input_dims={k: int(v) for k, v in json.loads(meta["input_dims"]).items()},
            class_names=tuple(json.loads(meta["class_names"])),
            output_activation=activation,
            preprocess=Preprocess.from_dict(json.loads(meta["preprocess"]), path),
            data_config=DataConfig.model_validate(json.loads(meta["data_config"])),
            output_name=outputs[0],
            ddt=DDTMap.from_dict(json.loads(meta["ddt"])) if "ddt" in meta else None,
            checkpoint_sha256=meta.get(CHECKPOINT_KEY),
        )
    except (KeyError, ValueError) as err:
        raise DataError(f"malformed heptagon metadata ({err})", path) from None
