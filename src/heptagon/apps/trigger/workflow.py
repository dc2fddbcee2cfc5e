"""Trigger runs from the command line: quantisation-aware training with pruning
(``heptagon trigger train``), hls4ml conversion with its bit-accurate emulation
(``heptagon trigger hls``) and continual top-ups (``heptagon trigger topup``).

A run trains the MLP of the hls4ml jet-tagging benchmark on a features file of
``heptagon trigger features`` (the ``hlf_*`` columns; the classes are its ``label_*``
branches). The run directory holds:

- ``trigger.json`` (:class:`~heptagon.artifacts.trigger.TriggerRunFile`): the options, the
  classes and inputs, the standardisation, each layer's ``ap_fixed`` types, the scores of
  the float and of the quantised model, the files trained on, one history record per epoch;
- ``weights.pt``: the final weights, pruning folded in and, for a QAT run, rounded to their
  types (what the firmware holds);
- ``continual.pt``: what a top-up needs of the earlier data: the EWC Fisher sums and
  anchors, and the replay memory (an equal share of jets per condition).

Pruning comes first (magnitude, from the float weights, fine-tuned after each step), then
QAT from the pruned weights with the masks kept: the order of the benchmark's pruned +
quantised model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn.utils import prune

from heptagon.apps.trigger.compression import (
    FixedPoint,
    LayerPrecision,
    dequantize,
    finalize_pruning,
    prunable_layers,
    prune_magnitude,
    quantize_model,
    sparsity,
)
from heptagon.apps.trigger.loop import fit, predict_proba, score, split, train_best
from heptagon.artifacts.trigger import (
    HlsComparison,
    LayerResourceRecord,
    LayerTypes,
    TriggerCondition,
    TriggerHlsFile,
    TriggerOptions,
    TriggerRunFile,
    TriggerScores,
)
from heptagon.errors import ConfigError, DataError
from heptagon.io import make_dir
from heptagon.logs import get_logger
from heptagon.models import build_model
from heptagon.train.continual import EWC, ReplayMemory
from heptagon.train.rundir import load_checkpoint, save_checkpoint

__all__ = [
    "TriggerData",
    "hls_run",
    "layer_precisions",
    "load_trigger_run",
    "parse_fixed",
    "read_features",
    "topup",
    "train_trigger",
]

RUN_FILE, WEIGHTS, CONTINUAL = "trigger.json", "weights.pt", "continual.pt"
_TYPE = re.compile(r"^ap_fixed<\s*(\d+)\s*,\s*(-?\d+)\s*>$")
_PARTS = ("weight", "bias", "result")


def parse_fixed(text: str, key: str = "precision") -> FixedPoint:
    """``ap_fixed<W,I>`` as a :class:`FixedPoint` (rounding and saturation are heptagon's,
    ``AP_RND, AP_SAT``); anything else is a :class:`ConfigError` naming ``key``."""
    m = _TYPE.match(text.strip())
    if m is None:
        raise ConfigError(f"'{text}' is not ap_fixed<W,I>", key=key)
    try:
        return FixedPoint(int(m[1]), int(m[2]))
    except ConfigError as err:
        raise ConfigError(err.args[0], key=key) from None


def layer_precisions(
    model: nn.Module,
    precision: str,
    result: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> tuple[LayerPrecision, dict[str, LayerPrecision]]:
    """Every dense layer's types: weights and bias ``precision``, result ``result`` (default
    ``precision``); ``overrides`` maps ``LAYER`` (all three parts) or ``LAYER:PART`` (``weight``,
    ``bias`` or ``result``) to an ``ap_fixed<W,I>``. Returns the default and the layers that
    differ from it (:func:`~.compression.quantize_model`'s arguments)."""
    w = parse_fixed(precision)
    default = LayerPrecision(w, w, parse_fixed(result) if result else w)
    names = [name for name, _ in prunable_layers(model)]
    parts: dict[str, dict[str, FixedPoint]] = {}
    for spec, text in (overrides or {}).items():
        layer, _, part = spec.partition(":")
        if layer not in names:
            raise ConfigError(f"no dense layer '{layer}' (layers: {', '.join(names)})", key=spec)
        if part and part not in _PARTS:
            raise ConfigError(f"'{part}' is not one of {', '.join(_PARTS)}", key=spec)
        t = parse_fixed(text, key=spec)
        for p in (part,) if part else _PARTS:
            parts.setdefault(layer, {})[p] = t
    per_layer = {
        layer: LayerPrecision(
            p.get("weight", default.weight),
            p.get("bias", default.bias),
            p.get("result", default.result),
        )
        for layer, p in parts.items()
    }
    return default, per_layer


@dataclass(frozen=True)
class TriggerData:
    """Standardised features ``(n, features)`` and integer labels of one features file."""

    x: Tensor
    y: Tensor


def read_features(
    path: str | Path, classes: Sequence[str] | None = None
) -> tuple[NDArray[np.float32], NDArray[np.int64], list[str], list[str]]:
    """The ``hlf_*`` columns ``(n, features)``, the labels (index of the true ``label_*``
    branch), the feature and the class names of a file of ``heptagon trigger features``.
    ``classes``: the label branches a run was trained on (their order); the file must have
    them all. A jet with no or several true labels is a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such features file", path)
    try:
        table = ak.from_parquet(path)
    except Exception as err:  # pyarrow's errors for a file that is not Parquet
        raise DataError(f"not a features Parquet file ({type(err).__name__})", path) from None
    fields = list(table.fields)
    names = [f for f in fields if f.startswith("hlf_")]
    labels = list(classes) if classes is not None else [f for f in fields if f.startswith("label_")]
    missing = [c for c in labels if c not in fields]
    if not names or len(labels) < 2 or missing:
        raise DataError(
            "needs hlf_* columns and at least two label_* branches (heptagon trigger features)"
            + (f"; missing {', '.join(missing)}" if missing else ""),
            path,
        )
    x = np.stack([np.asarray(table[f], dtype=np.float32) for f in names], axis=1)
    onehot = np.stack([np.asarray(table[c], dtype=bool) for c in labels], axis=1)
    if not (onehot.sum(1) == 1).all():
        raise DataError("a jet without exactly one true label among the classes", path)
    return x, onehot.argmax(1), names, labels


def _standardise(x: NDArray[np.float32], mean: Sequence[float], std: Sequence[float]) -> Tensor:
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return torch.from_numpy((x - m) / s)


def _condition_parts(
    cond: TriggerCondition, run: TriggerRunFile, seed: int
) -> dict[str, TriggerData]:
    """The parts (``train``/``val``/``test`` or ``train``/``test``) of one condition."""
    x, y, names, _ = read_features(cond.features, run.classes)
    if names != run.features:
        raise DataError(f"its hlf_* columns differ from the run's ({run.features})", cond.features)
    xt, yt = _standardise(x, run.mean, run.std), torch.from_numpy(y)
    if cond.split == "train_val_test":
        idx = split(len(y), seed)
    else:
        order = np.random.default_rng(seed).permutation(len(y))
        idx = {"train": order[: len(y) // 2], "test": order[len(y) // 2 :]}
    return {k: TriggerData(xt[i], yt[i]) for k, i in idx.items()}


def _scores(model: nn.Module, data: TriggerData) -> TriggerScores:
    s = score(predict_proba(model, [data.x]), data.y.numpy())
    return TriggerScores(accuracy=s.accuracy, auc=s.auc, jets=len(data.y))


def _mlp(n_features: int, n_classes: int, hidden: tuple[int, ...]) -> nn.Module:
    model = build_model("mlp", {"jet_features": n_features}, n_classes, hidden=hidden)
    assert isinstance(model, nn.Module)
    return model


def _build(run: TriggerRunFile) -> nn.Module:
    """The run's network (quantised layers for a QAT run), weights not loaded."""
    model = _mlp(len(run.features), len(run.classes), run.options.hidden)
    if not run.layers:
        return model
    types = {
        name: LayerPrecision(parse_fixed(t.weight), parse_fixed(t.bias), parse_fixed(t.result))
        for name, t in run.layers.items()
    }
    first = next(iter(run.layers.values())).input
    default = next(iter(types.values()))
    return quantize_model(
        model, default, per_layer=types, input_type=parse_fixed(first) if first else None
    )


def _hls_type(t: FixedPoint) -> str:
    return f"ap_fixed<{t.total_bits},{t.integer_bits}>"


def _layer_types(model: nn.Module) -> dict[str, LayerTypes]:
    out = {}
    for name, module in prunable_layers(model):
        p: LayerPrecision | None = getattr(module, "precision", None)
        if p is not None:
            out[name] = LayerTypes(
                weight=_hls_type(p.weight), bias=_hls_type(p.bias), result=_hls_type(p.result),
                input=_hls_type(p.input) if p.input else None,
            )  # fmt: skip
    return out


def _write_run(
    out: Path, run: TriggerRunFile, model: nn.Module, ewc: EWC, memory: ReplayMemory
) -> None:
    """The run directory's three files, each written atomically (``trigger.json`` last)."""
    make_dir(out)
    state = dequantize(model).state_dict() if run.layers else model.state_dict()
    save_checkpoint(out / WEIGHTS, {k: v.detach().clone() for k, v in state.items()})
    save_checkpoint(out / CONTINUAL, {"ewc": ewc.state(), "replay": memory.state()})
    run.write(out / RUN_FILE)


def _check_out(out: Path) -> None:
    if (out / RUN_FILE).exists():
        raise ConfigError(f"{out} already holds a trigger run; choose another --out", key="out")


def train_trigger(features: str | Path, out: str | Path, options: TriggerOptions) -> TriggerRunFile:
    """Train, prune and quantise the MLP on ``features`` into the run directory ``out``
    (see the module docstring). Returns what ``trigger.json`` holds."""
    out, features = Path(out), Path(features).resolve()
    _check_out(out)
    log = get_logger("trigger")
    x, y, names, classes = read_features(features)
    idx = split(len(y), options.seed)
    train = x[idx["train"]]
    mean, std = train.mean(0), train.std(0) + 1e-6
    stub = TriggerRunFile(
        options=options, classes=classes, features=names,
        mean=[float(v) for v in mean], std=[float(v) for v in std], layers={}, sparsity=0.0,
        float_scores=None, scores={},
        conditions=[TriggerCondition(features=str(features), split="train_val_test",
                                     strategy="train")],
        history=[],
    )  # fmt: skip
    data = _condition_parts(stub.conditions[0], stub, options.seed)
    xs = {k: [d.x] for k, d in data.items()}
    ys = {k: d.y for k, d in data.items()}
    history: list[dict[str, str | int | float]] = []

    torch.manual_seed(options.seed)
    model = _mlp(len(names), len(classes), options.hidden)
    if options.precision is not None:  # a bad type fails before the training
        default, per_layer = layer_precisions(
            model, options.precision, options.result_precision, options.layer_precision
        )
    train_best(model, xs, ys, options.epochs, options.lr, stage="float", history=history)
    if options.prune_to > 0:

        def finetune(m: nn.Module) -> None:
            losses = fit(m, xs["train"], ys["train"], epochs=options.qat_epochs, lr=options.qat_lr)
            history.append({"stage": "prune", "epoch": len(losses), "loss": losses[-1]})
            log.info(f"prune step: {sparsity(m):.3f} of the weights zero, loss {losses[-1]:.4f}")

        prune_magnitude(model, options.prune_to, finetune, steps=options.prune_steps)
    float_scores = _scores(model, data["test"])
    log.info(f"float: test accuracy {float_scores.accuracy:.4f}, AUC {float_scores.auc:.4f}")
    if options.precision is not None:
        input_type = parse_fixed(options.input_precision) if options.input_precision else None
        model = quantize_model(model, default, per_layer=per_layer, input_type=input_type)
        train_best(model, xs, ys, options.qat_epochs, options.qat_lr, stage="qat", history=history)
    finalize_pruning(model)
    scores = _scores(model, data["test"])
    log.info(f"final: test accuracy {scores.accuracy:.4f}, AUC {scores.auc:.4f}")

    ewc = EWC(0.0)
    ewc.consolidate(model, xs["train"], ys["train"])
    memory = ReplayMemory(options.memory, seed=options.seed)
    memory.add(xs["train"], ys["train"])
    run = stub.model_copy(
        update={
            "layers": _layer_types(model),
            "sparsity": sparsity(model),
            "float_scores": float_scores,
            "scores": {features.stem: scores},
            "history": history,
        }
    )
    _write_run(out, run, model, ewc, memory)
    return run


def load_trigger_run(run_dir: str | Path) -> tuple[TriggerRunFile, nn.Module, dict[str, Tensor]]:
    """A run's ``trigger.json``, its network with the weights loaded (eval mode), and the
    continual state (``continual.pt``'s ``ewc`` and ``replay`` tensors, flattened with
    those prefixes)."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise DataError(f"not a trigger run (no {RUN_FILE})", run_dir)
    run = TriggerRunFile.read(run_dir / RUN_FILE)
    model = _build(run)
    try:
        model.load_state_dict(load_checkpoint(run_dir / WEIGHTS))
    except RuntimeError:
        raise DataError(
            "the weights do not fit the network of trigger.json", run_dir / WEIGHTS
        ) from None
    state = load_checkpoint(run_dir / CONTINUAL)
    flat = {f"{part}.{k}": v for part in ("ewc", "replay") for k, v in state.get(part, {}).items()}
    return run, model.eval(), flat


def topup(
    run_dir: str | Path,
    features: str | Path,
    out: str | Path,
    *,
    ewc: float | None = None,
    replay: int | None = None,
    epochs: int = 20,
    lr: float = 3e-4,
) -> TriggerRunFile:
    """Fine-tune the run of ``run_dir`` on half the jets of ``features`` (a new detector
    condition; the other half is its test set) into a new run ``out``: plain fine-tuning,
    with the online-EWC penalty of strength ``ewc`` (Fisher sums of every earlier
    condition), and/or mixed with ``replay`` remembered jets (an equal share per earlier
    condition). The new run's scores cover the test sets of every condition so far."""
    out, features = Path(out), Path(features).resolve()
    _check_out(out)
    if epochs < 1:
        raise ConfigError(f"must be >= 1, got {epochs}", key="epochs")
    run, model, state = load_trigger_run(run_dir)
    seed = run.options.seed
    cond = TriggerCondition(
        features=str(features),
        split="topup_test",
        strategy="+".join(s for s, on in (("ewc", ewc is not None), ("replay", replay)) if on)
        or "finetune",
    )
    new = _condition_parts(cond, run, seed)
    x, y = [new["train"].x], new["train"].y
    consolidation = EWC(ewc or 0.0)
    consolidation.load_state({k[4:]: v for k, v in state.items() if k.startswith("ewc.")})
    stored = {k[7:]: v for k, v in state.items() if k.startswith("replay.")}
    memory = ReplayMemory(replay or max(sum(len(v) for k, v in stored.items() if k[0] == "y"), 1),
                          seed=seed)  # fmt: skip
    memory.load_state(stored)
    train_x, train_y = memory.mix(x, y) if replay else (x, y)
    if run.options.prune_to > 0:  # pruned weights stay zero
        for _, module in prunable_layers(model):
            prune.custom_from_mask(module, "weight", module.weight.detach() != 0)
    losses = fit(
        model, train_x, train_y, epochs=epochs, lr=lr, seed=seed,
        penalty=consolidation.penalty if ewc is not None else None,
    )  # fmt: skip
    log = get_logger("trigger")
    history = list(run.history)
    for k, loss in enumerate(losses):
        history.append({"stage": f"topup {features.stem}", "epoch": k + 1, "loss": loss})
        log.info(f"topup epoch {k + 1}/{epochs}: loss {loss:.4f}")
    finalize_pruning(model).eval()
    conditions = [*run.conditions, cond]
    scores = {}
    for c in conditions:
        test = new["test"] if c is cond else _condition_parts(c, run, seed)["test"]
        name = Path(c.features).stem
        scores[name] = _scores(model, test)
        log.info(f"{name}: test accuracy {scores[name].accuracy:.4f}")
    consolidation.consolidate(model, x, y)
    memory.add(x, y)
    result = run.model_copy(
        update={
            "sparsity": sparsity(model),
            "float_scores": None,
            "scores": scores,
            "conditions": conditions,
            "history": history,
        }
    )
    _write_run(out, result, model, consolidation, memory)
    return result


def hls_run(run_dir: str | Path, out: str | Path, *, reuse_factor: int = 1) -> TriggerHlsFile:
    """Convert the run's network with hls4ml into ``out/hls4ml_prj``, run its compiled C++
    emulation on the test jets of the run's first condition, and write ``out/hls.json``
    (:class:`~heptagon.artifacts.trigger.TriggerHlsFile`): agreement with the torch
    fixed-point model, heptagon's resource estimates. A float run is converted at
    :data:`~heptagon.apps.trigger.hls.DEFAULT_PRECISION`."""
    import hls4ml

    from heptagon.apps.trigger.hls import DEFAULT_PRECISION, convert, emulate, resource_estimate

    out = Path(out)
    run, model, _ = load_trigger_run(run_dir)
    test = _condition_parts(run.conditions[0], run, run.options.seed)["test"]
    make_dir(out)
    project = out / "hls4ml_prj"
    net = model.get_submodule("net")
    compiled = convert(net, (len(run.features),), project, reuse_factor=reuse_factor)
    x = test.x.numpy()
    emulated = emulate(compiled, x)
    with torch.no_grad():
        ref = net(test.x).numpy()
    last = list(prunable_layers(net))[-1][1]
    lsb = getattr(last, "precision", DEFAULT_PRECISION).result.step
    diff = float(np.abs(emulated - ref).max())
    labels = test.y.numpy()
    report = TriggerHlsFile(
        run=str(Path(run_dir).resolve()),
        hls4ml_version=hls4ml.__version__,
        backend="Vitis (io_parallel, latency strategy)",
        project=str(project.resolve()),
        comparison=HlsComparison(
            jets=len(x),
            accuracy_emulated=float((emulated.argmax(1) == labels).mean()),
            accuracy_torch=float((ref.argmax(1) == labels).mean()),
            argmax_agreement=float((emulated.argmax(1) == ref.argmax(1)).mean()),
            max_abs_logit_diff=diff,
            lsb=lsb,
            bit_exact=diff == 0.0,
        ),
        resources=[
            LayerResourceRecord(
                name=f"net.{r.name}",
                multiplications=r.multiplications,
                bit_operations=r.bit_operations,
                weight_bits=r.weight_bits,
                input_bits=r.input_bits,
            )
            for r in resource_estimate(net, (len(run.features),))
        ],
        hls4ml_resources=None,
        hls4ml_resources_note=(
            "hls4ml reports LUT / FF / DSP / BRAM only from C synthesis (build(csynth=True)) "
            "with Vitis HLS or Vivado HLS, which are not installed here: none given; the "
            "estimates above are heptagon's (multiplications, bit operations)"
        ),
    )
    report.write(out / "hls.json")
    return report
