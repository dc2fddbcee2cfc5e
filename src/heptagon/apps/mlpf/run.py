"""The MLPF workflow: element features and targets, training, decoding into particles,
evaluation against the rule-based PF, and ONNX export.

- :func:`element_features`: per element (tracks, then towers, per event) the model inputs
  :data:`FEATURES` and the element's own pT, E, eta, phi (the reference of the regression
  targets: ``log(pT / pT_element)``, ``log(E / E_element)``, ``eta - eta_element``, sin and
  cos of ``phi - phi_element``).
- :func:`train_mlpf`: trains :class:`heptagon.models.mlpf.MLPF` on an element sample
  (``heptagon mlpf generate``): binary cross entropy on particle / no particle, the focal
  loss (:class:`heptagon.train.losses.FocalLoss`) on the class of true particles, Huber on
  the regression targets and cross entropy on the charge; the run dir holds
  ``options.json``, ``history.jsonl`` (one line per epoch) and ``model.pt``.
- :func:`decode`: per-element outputs -> :class:`~heptagon.apps.mlpf.pf.PFParticles`.
- :func:`evaluate_mlpf`: MLPF and the rule-based PF on another sample, the metrics of
  :mod:`heptagon.apps.mlpf.metrics` for both (and for the targets themselves) in
  ``RUN/eval/metrics.json``.
- :func:`export_mlpf`: ONNX with dynamic batch and element axes.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from heptagon.apps.mlpf.metrics import pf_metrics
from heptagon.apps.mlpf.pf import PFParticles, rule_based_pf
from heptagon.errors import ConfigError, DataError
from heptagon.generate.elements import CLS_CH, CLS_ELECTRON, CLS_MUON, CLS_NONE, Elements
from heptagon.generate.run import load_manifest
from heptagon.io import atomic_path, write_json_atomic
from heptagon.models import build_model
from heptagon.models.mlpf import MLPF
from heptagon.train.losses import FocalLoss

__all__ = [
    "FEATURES",
    "ElementArrays",
    "TrainOptions",
    "decode",
    "element_features",
    "evaluate_mlpf",
    "export_mlpf",
    "load_elements",
    "load_mlpf",
    "train_mlpf",
]

#: model input features per element
FEATURES = (
    "is_track",
    "is_tower",
    "log_pt",
    "eta",
    "sin_phi",
    "cos_phi",
    "log_e",
    "charge",
    "eta_calo",
    "sin_phi_calo",
    "cos_phi_calo",
    "d0",
    "dz",
    "muon_hit",
    "log_e_ecal",
    "log_e_hcal",
)
_PION_MASS = 0.13957
_CHARGED = (CLS_CH, CLS_ELECTRON, CLS_MUON)


@dataclass(frozen=True)
class ElementArrays:
    """Flat per-element arrays of a batch of events (tracks, then towers, per event)."""

    counts: np.ndarray
    features: np.ndarray  # (n_elements, len(FEATURES)) float32
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray


def element_features(el: Elements) -> ElementArrays:
    """Model inputs and reference kinematics of every element."""
    tr, tw = el.track, el.tower
    n = len(el.n_tracks)
    f64 = np.float64
    t_pt, t_eta = tr["pt"].astype(f64), tr["eta"].astype(f64)
    t_e = np.sqrt((t_pt * np.cosh(t_eta)) ** 2 + _PION_MASS**2)
    w_eta = tw["eta"].astype(f64)
    w_e = tw["eEcal"].astype(f64) + tw["eHcal"].astype(f64)
    w_pt = w_e / np.cosh(w_eta)
    n_tr, n_tw = t_pt.size, w_eta.size
    ones_tr, zeros_tr, zeros_tw = np.ones(n_tr), np.zeros(n_tr), np.zeros(n_tw)
    track_cols = (
        ones_tr,
        zeros_tr,
        np.log(t_pt),
        t_eta,
        np.sin(tr["phi"]),
        np.cos(tr["phi"]),
        np.log(t_e),
        tr["charge"],
        tr["etaCalo"],
        np.sin(tr["phiCalo"]),
        np.cos(tr["phiCalo"]),
        np.clip(tr["d0"], -5, 5),
        np.clip(tr["dz"] / 100, -5, 5),
        tr["muonHit"],
        zeros_tr,
        zeros_tr,
    )
    tower_cols = (
        zeros_tw,
        np.ones(n_tw),
        np.log(w_pt),
        w_eta,
        np.sin(tw["phi"]),
        np.cos(tw["phi"]),
        np.log(w_e),
        zeros_tw,
        w_eta,
        np.sin(tw["phi"]),
        np.cos(tw["phi"]),
        zeros_tw,
        zeros_tw,
        zeros_tw,
        np.log1p(tw["eEcal"]),
        np.log1p(tw["eHcal"]),
    )
    order = np.argsort(
        np.concatenate(
            [np.repeat(np.arange(n), el.n_tracks), np.repeat(np.arange(n), el.n_towers)]
        ),
        kind="stable",
    )
    feats = np.stack(
        [
            np.concatenate([np.asarray(a, f64), np.asarray(b, f64)])
            for a, b in zip(track_cols, tower_cols, strict=True)
        ],
        axis=1,
    )[order]

    def cat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(a, f64), np.asarray(b, f64)])[order]

    return ElementArrays(
        counts=el.n_tracks + el.n_towers,
        features=feats.astype(np.float32),
        pt=cat(t_pt, w_pt),
        eta=cat(t_eta, w_eta),
        phi=cat(tr["phi"], tw["phi"]),
        energy=cat(t_e, w_e),
    )


def _targets(el: Elements, arr: ElementArrays) -> dict[str, np.ndarray]:
    t = el.target
    cls = t["class"].astype(np.int64)
    real = cls != CLS_NONE
    safe_pt = np.where(real, t["pt"], 1.0)
    safe_e = np.where(real, t["energy"], 1.0)
    dphi = t["phi"] - arr.phi
    reg = np.stack(
        [
            np.log(np.maximum(safe_pt, 1e-3) / arr.pt),
            np.log(np.maximum(safe_e, 1e-3) / arr.energy),
            t["eta"] - arr.eta,
            np.sin(dphi),
            np.cos(dphi),
        ],
        axis=1,
    )
    return {
        "cls": cls,
        "reg": np.where(real[:, None], reg, 0.0).astype(np.float32),
        "charge": (np.sign(t["charge"]).astype(np.int64) + 1),
    }


def _pad(values: np.ndarray, counts: np.ndarray, length: int) -> np.ndarray:
    """``(n_events, length, ...)`` from flat per-element values (zeros at padding)."""
    out = np.zeros((counts.size, length, *values.shape[1:]), dtype=values.dtype)
    event = np.repeat(np.arange(counts.size), counts)
    local = np.arange(values.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    out[event, local] = values
    return out


def _padded_length(counts: np.ndarray, bin_size: int) -> int:
    return max(bin_size, math.ceil(int(counts.max(initial=1)) / bin_size) * bin_size)


def load_elements(data: Path) -> Elements:
    """Every event of an element sample dir (``heptagon mlpf generate``)."""
    manifest = load_manifest(data)
    if manifest.get("kind") != "elements":
        raise DataError("not an element sample (made by `heptagon mlpf generate`)", file=data)
    arrays = [ak.from_parquet(data / f["file"]) for f in manifest["files"]]
    return Elements.from_table(ak.concatenate(arrays))


class TrainOptions(BaseModel):
    """An MLPF training run (``heptagon mlpf train``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path
    out: Path
    epochs: int = Field(10, gt=0)
    batch_events: int = Field(8, gt=0)
    lr: float = Field(1e-3, gt=0)
    width: int = Field(64, gt=0)
    n_layers: int = Field(3, gt=0)
    bin_size: int = Field(64, ge=2)
    focal_gamma: float = Field(2.0, ge=0)
    seed: int = 0


def _batches(
    arr: ElementArrays, targets: dict[str, np.ndarray], events: np.ndarray, bin_size: int
) -> dict[str, torch.Tensor]:
    """Padded tensors of the events ``events``."""
    start = np.cumsum(arr.counts) - arr.counts
    counts = arr.counts[events]
    idx = np.concatenate([np.arange(s, s + c) for s, c in zip(start[events], counts, strict=True)])
    length = _padded_length(counts, bin_size)
    mask = _pad(np.ones(idx.size, dtype=np.float32), counts, length)
    out = {
        "el_features": torch.from_numpy(_pad(arr.features[idx], counts, length)).transpose(1, 2),
        "el_mask": torch.from_numpy(mask).unsqueeze(1),
    }
    for k, v in targets.items():
        out[k] = torch.from_numpy(_pad(v[idx], counts, length))
    return out


def _loss(out: torch.Tensor, batch: dict[str, torch.Tensor], focal: FocalLoss) -> torch.Tensor:
    mask = batch["el_mask"][:, 0] > 0
    o = out[mask]
    cls = batch["cls"][mask]
    real = cls != CLS_NONE
    loss = F.binary_cross_entropy_with_logits(o[:, 0], real.float())
    if real.any():
        r = o[real]
        loss = loss + focal.per_entry(r[:, 1:6], cls[real] - 1).mean()
        loss = loss + F.huber_loss(r[:, 6:11], batch["reg"][mask][real])
        loss = loss + F.cross_entropy(r[:, 11:14], batch["charge"][mask][real])
    return loss


def _build(options: dict[str, Any]) -> MLPF:
    model = build_model("mlpf", {"el_features": len(FEATURES), "el_mask": 1}, 6, **options)
    assert isinstance(model, MLPF)
    return model


def train_mlpf(opts: TrainOptions) -> Path:
    """Train MLPF on ``opts.data`` into the run dir ``opts.out``; returns the model path."""
    torch.manual_seed(opts.seed)
    el = load_elements(opts.data)
    arr = element_features(el)
    targets = _targets(el, arr)
    model_options = {"width": opts.width, "n_layers": opts.n_layers, "bin_size": opts.bin_size}
    model = _build(model_options)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr)
    focal = FocalLoss(opts.focal_gamma)
    opts.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        opts.out / "options.json", {**json.loads(opts.model_dump_json()), "model": model_options}
    )
    # events of similar size share a batch (less padding)
    order = np.argsort(arr.counts, kind="stable")
    groups = [order[i : i + opts.batch_events] for i in range(0, order.size, opts.batch_events)]
    rng = np.random.default_rng(opts.seed)
    history = []
    start = time.perf_counter()
    for epoch in range(opts.epochs):
        model.train()
        total, n = 0.0, 0
        for g in rng.permutation(len(groups)):
            batch = _batches(arr, targets, groups[g], opts.bin_size)
            loss = _loss(model(batch["el_features"], batch["el_mask"]), batch, focal)
            optim.zero_grad()
            loss.backward()
            optim.step()
            total, n = total + loss.item(), n + 1
        history.append(
            {"epoch": epoch, "train_loss": total / n, "wall_s": time.perf_counter() - start}
        )
    with atomic_path(opts.out / "history.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    path = opts.out / "model.pt"
    with atomic_path(path) as tmp:
        torch.save({"options": model_options, "state": model.state_dict()}, tmp)
    return path


def load_mlpf(run: Path) -> MLPF:
    """The trained model of a run dir."""
    path = run / "model.pt"
    if not path.exists():
        raise ConfigError(f"no model.pt in '{run}' (run `heptagon mlpf train` first)", key="run")
    saved = torch.load(path, weights_only=True)
    model = _build(saved["options"])
    model.load_state_dict(saved["state"])
    return model.eval()


def predict(model: MLPF, arr: ElementArrays, batch_events: int = 16) -> np.ndarray:
    """Per-element outputs ``(n_elements, len(OUTPUTS))`` (flat, element order)."""
    outs = []
    n_events = arr.counts.size
    empty = {"cls": np.zeros(arr.counts.sum(), dtype=np.int64)}
    with torch.no_grad():
        for lo in range(0, n_events, batch_events):
            events = np.arange(lo, min(lo + batch_events, n_events))
            batch = _batches(arr, empty, events, model.bin_size)
            out = model(batch["el_features"], batch["el_mask"]).numpy()
            mask = batch["el_mask"][:, 0].numpy() > 0
            outs.append(out[mask])
    return np.concatenate(outs) if outs else np.zeros((0, 14), np.float32)


def decode(out: np.ndarray, arr: ElementArrays) -> PFParticles:
    """Particles from per-element outputs: elements with a particle probability above 0.5
    give one particle of the most probable class."""
    n = arr.counts.size
    event = np.repeat(np.arange(n), arr.counts)
    local = np.arange(event.size) - np.repeat(np.cumsum(arr.counts) - arr.counts, arr.counts)
    sel = out[:, 0] > 0
    o = out[sel].astype(np.float64)
    cls = o[:, 1:6].argmax(1) + 1
    charge = o[:, 11:14].argmax(1) - 1
    charge = np.where(np.isin(cls, _CHARGED), np.where(charge == 0, 1, charge), 0)
    phi = arr.phi[sel] + np.arctan2(o[:, 9], o[:, 10])
    return PFParticles(
        counts=np.bincount(event[sel], minlength=n),
        cls=cls,
        pt=arr.pt[sel] * np.exp(o[:, 6]),
        eta=arr.eta[sel] + o[:, 8],
        phi=np.arctan2(np.sin(phi), np.cos(phi)),
        energy=arr.energy[sel] * np.exp(o[:, 7]),
        charge=charge.astype(np.float64),
        element=local[sel],
    )


def _truth(el: Elements) -> PFParticles:
    """The targets as particles (the metrics' ceiling)."""
    t = el.target
    n_el = el.n_tracks + el.n_towers
    real = t["class"] != CLS_NONE
    event = np.repeat(np.arange(n_el.size), n_el)
    local = np.arange(event.size) - np.repeat(np.cumsum(n_el) - n_el, n_el)
    return PFParticles(
        counts=np.bincount(event[real], minlength=n_el.size),
        cls=t["class"][real].astype(np.int64),
        pt=t["pt"][real].astype(np.float64),
        eta=t["eta"][real].astype(np.float64),
        phi=t["phi"][real].astype(np.float64),
        energy=t["energy"][real].astype(np.float64),
        charge=t["charge"][real].astype(np.float64),
        element=local[real],
    )


def evaluate_mlpf(run: Path, data: Path) -> dict[str, Any]:
    """Metrics of MLPF, the rule-based PF and the targets on ``data``, written to
    ``run/eval/metrics.json`` (with the MLPF inference time per event)."""
    model = load_mlpf(run)
    el = load_elements(data)
    arr = element_features(el)
    start = time.perf_counter()
    out = predict(model, arr)
    wall = time.perf_counter() - start
    result = {
        "events": int(arr.counts.size),
        "mean_elements": float(arr.counts.mean()),
        "mlpf_ms_per_event": 1e3 * wall / max(arr.counts.size, 1),
        "mlpf": pf_metrics(decode(out, arr), el),
        "pf": pf_metrics(rule_based_pf(el), el),
        "truth": pf_metrics(_truth(el), el),
    }
    (run / "eval").mkdir(exist_ok=True)
    write_json_atomic(run / "eval" / "metrics.json", result)
    return result


def export_mlpf(model: MLPF, path: Path, n_features: int = len(FEATURES)) -> Path:
    """ONNX of ``model`` (inputs ``el_features``, ``el_mask``; output ``output``) with
    dynamic batch and element axes (the element count must stay a multiple of the model's
    ``bin_size``)."""
    model = model.eval()
    n = 2 * model.bin_size
    args = (torch.zeros(1, n_features, n), torch.ones(1, 1, n))
    axes = {
        "el_features": {0: "batch", 2: "elements"},
        "el_mask": {0: "batch", 2: "elements"},
        "output": {0: "batch", 1: "elements"},
    }
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        torch.onnx.export(
            model,
            args,
            tmp,
            input_names=["el_features", "el_mask"],
            output_names=["output"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return path
