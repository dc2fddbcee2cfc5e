"""The MLPF workflow: element features and targets, training, decoding into particles,
evaluation against the rule-based PF, and ONNX export.

- :func:`element_features`: per element (tracks, then towers, per event) the model inputs
  :data:`FEATURES` and the reference pT, E, eta, phi of the regression targets
  (``log(pT / pT_ref)``, ``log(E / E_ref)``, ``eta - eta_ref``, sin and cos of
  ``phi - phi_ref``): a track's own; a tower's direction and the energy left after
  subtracting its linked tracks' momenta (at least a tenth of its energy), so the network
  learns a correction to the rule-based subtraction. Besides the element's own
  measurements the inputs hold what the rule-based PF's linking computes
  (:func:`heptagon.apps.mlpf.pf.link_elements`): per track the distance to its linked
  tower and that tower's ECAL and HCAL energy over the track momentum, per tower the
  linked tracks' momentum and the ECAL / HCAL energy left after subtracting it -- what
  tells a neutral hadron overlapping a charged one.
- :func:`train_mlpf`: trains :class:`heptagon.models.mlpf.MLPF` on an element sample
  (``heptagon mlpf generate``), inputs standardised on the training elements: binary
  cross entropy on particle / no particle and the focal loss
  (:class:`heptagon.train.losses.FocalLoss`) on the class of true particles, both weighted
  per target class by ``frequency ** -class_weight_power`` (rare classes -- electrons,
  neutral hadrons -- count more); the squared error of the pT and energy ratios (or Huber
  on their logs, ``energy_loss``) and Huber on the direction, weighted by the element's
  reference ``pT ** regression_pt_power`` (the energetic particles make the jets); cross
  entropy on the charge; AdamW with a warm-up + cosine learning-rate schedule. A
  ``val_fraction`` of the events is held out: its loss is recorded per epoch and the
  particle-probability threshold of :func:`decode` is chosen on it (the one with the
  narrowest jet pT response). The run dir holds ``options.json``, ``history.jsonl`` (one
  line per epoch) and ``model.pt`` (with the :class:`Decoding`).
- :func:`decode`: per-element outputs -> :class:`~heptagon.apps.mlpf.pf.PFParticles`
  (with ``track_momentum``, charged particles from tracks keep the measured momentum, as
  the rule-based PF's do: the network decides which particle each element is, and
  regresses the towers' energies).
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heptagon.apps.mlpf.metrics import jet_response, pf_metrics
from heptagon.apps.mlpf.pf import PFParticles, link_elements, rule_based_pf
from heptagon.errors import ConfigError, DataError
from heptagon.generate.elements import CLS_CH, CLS_ELECTRON, CLS_MUON, CLS_NONE, Elements
from heptagon.generate.run import load_manifest
from heptagon.io import atomic_path, make_dir, write_json_atomic
from heptagon.models import build_model
from heptagon.models.mlpf import MLPF
from heptagon.train.allocator import retain_freed_memory
from heptagon.train.device import DeviceChoice, select_device
from heptagon.train.losses import FocalLoss
from heptagon.train.rundir import load_checkpoint

__all__ = [
    "FEATURES",
    "Decoding",
    "ElementArrays",
    "TrainOptions",
    "decode",
    "element_features",
    "evaluate_mlpf",
    "export_mlpf",
    "load_decoding",
    "load_elements",
    "load_mlpf",
    "predict",
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
    # the rule-based PF's linking: tracks
    "link_dr",
    "linked_ecal_over_p",
    "linked_hcal_over_p",
    "pf_electron",
    # the rule-based PF's linking: towers
    "n_linked_tracks",
    "log_linked_p",
    "left_ecal",
    "left_hcal",
    "left_fraction",
    "pf_photon",
    "pf_neutral_hadron",
)
_PION_MASS = 0.13957
#: the least reference energy of a tower, as a fraction of its energy
_REFERENCE_FLOOR = 0.1
#: the largest ratio of a particle's pT or energy to its element's in the regression loss
_MAX_RATIO = 20.0
_CHARGED = (CLS_CH, CLS_ELECTRON, CLS_MUON)


@dataclass(frozen=True)
class ElementArrays:
    """Flat per-element arrays of a batch of events (tracks, then towers, per event):
    the inputs and the reference kinematics of the regression targets (a track's own; a
    tower's direction and the energy its linked tracks leave, see :func:`element_features`)."""

    counts: np.ndarray
    features: np.ndarray  # (n_elements, len(FEATURES)) float32
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray


def element_features(el: Elements) -> ElementArrays:
    """Model inputs and reference kinematics of every element."""
    tr, tw = el.track, el.tower
    links = link_elements(el)
    n = len(el.n_tracks)
    f64 = np.float64
    t_pt, t_eta = tr["pt"].astype(f64), tr["eta"].astype(f64)
    t_e = np.sqrt((t_pt * np.cosh(t_eta)) ** 2 + _PION_MASS**2)
    w_eta = tw["eta"].astype(f64)
    w_e = tw["eEcal"].astype(f64) + tw["eHcal"].astype(f64)
    w_pt = w_e / np.cosh(w_eta)
    n_tr, n_tw = t_pt.size, w_eta.size
    ones_tr, zeros_tr, zeros_tw = np.ones(n_tr), np.zeros(n_tr), np.zeros(n_tw)
    linked = links.link >= 0
    n_linked = np.bincount(links.link[linked], minlength=n_tw)
    linked_p = np.bincount(links.link[linked], weights=links.p[linked], minlength=n_tw)
    left = links.left_ecal + links.left_hcal
    # the towers' reference energy: what the linked tracks leave (at least a fraction)
    w_ref = np.maximum(
        np.maximum(links.left_ecal, 0) + np.maximum(links.left_hcal, 0), _REFERENCE_FLOOR * w_e
    )
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
        links.link_dr,
        np.clip(links.ecal_linked / links.p, 0, 5),
        np.clip(links.hcal_linked / links.p, 0, 5),
        links.electron,
        *(zeros_tr,) * 7,
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
        *(zeros_tw,) * 4,
        n_linked,
        np.log1p(linked_p),
        np.arcsinh(links.left_ecal),
        np.arcsinh(links.left_hcal),
        np.clip(left / w_e, -5, 1),
        links.photon,
        links.neutral,
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
        pt=cat(t_pt, w_ref / np.cosh(w_eta)),
        eta=cat(t_eta, w_eta),
        phi=cat(tr["phi"], tw["phi"]),
        energy=cat(t_e, w_ref),
    )


def _targets(el: Elements, arr: ElementArrays, pt_power: float) -> dict[str, np.ndarray]:
    """Class, regression and charge targets, and the weight of each element's regression
    loss (its reference pT to the power ``pt_power``)."""
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
        "reg_weight": (arr.pt**pt_power).astype(np.float32),
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


#: the branches :meth:`Elements.from_table` needs (the element and target collections)
_BRANCHES = ("Track_pt", "Tower_eta", "GenPart_class", "GenJet_pt", "GenMET_pt")


def _read_shard(file: Path) -> ak.Array:
    """One Parquet shard of an element sample, checked for the branches MLPF needs."""
    try:
        table = ak.from_parquet(file)
    except FileNotFoundError:
        raise DataError("shard missing (listed in manifest.json)", file=file) from None
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"not a readable Parquet file ({type(err).__name__})", file=file) from None
    missing = [b for b in _BRANCHES if b not in table.fields]
    if missing:
        raise DataError("missing in the element sample", file=file, key=missing[0])
    return table


def _load_table(data: Path) -> ak.Array:
    manifest = load_manifest(data)
    if not isinstance(manifest, dict) or manifest.get("kind") != "elements":
        raise DataError("not an element sample (made by `heptagon mlpf generate`)", file=data)
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise DataError("lists no shards", file=data / "manifest.json", key="files")
    shards = []
    for rec in files:
        if not isinstance(rec, dict) or not isinstance(rec.get("file"), str):
            raise DataError("a shard without a file name", data / "manifest.json", "files")
        shards.append(_read_shard(data / rec["file"]))
    return ak.concatenate(shards)


def load_elements(data: Path) -> Elements:
    """Every event of an element sample dir (``heptagon mlpf generate``)."""
    return Elements.from_table(_load_table(data))


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
    #: class weights ``frequency ** -class_weight_power`` (0: unweighted)
    class_weight_power: float = Field(0.25, ge=0)
    #: the loss of the pT and energy outputs: Huber on the log of the ratio to the
    #: element's ("log"), or the squared error of the ratio itself ("ratio": unbiased
    #: sums of energies)
    energy_loss: Literal["log", "ratio"] = "ratio"
    #: the regression loss of an element is weighted by its reference pT to this power
    #: (0: equal weights; the energetic particles make the jets)
    regression_pt_power: float = Field(1.0, ge=0)
    #: "cosine": linear warm-up over the first 5% of the steps, then cosine decay to 0
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    #: the fraction of the events held out for validation (and the threshold)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    #: the particle-probability threshold; None: chosen on the validation events (0.5
    #: without them)
    threshold: float | None = Field(None, gt=0, lt=1)
    #: decoding: charged particles from tracks keep the track's momentum and direction
    track_momentum: bool = True
    #: "auto": CUDA when there is one
    device: DeviceChoice = "auto"
    #: mixed precision (float16 with a gradient scaler), on CUDA only
    amp: bool = True
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


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _loss(
    out: torch.Tensor,
    batch: dict[str, torch.Tensor],
    focal: FocalLoss,
    weights: torch.Tensor,
    energy_loss: str,
) -> torch.Tensor:
    """The training loss of a batch; ``weights`` per target class (none first),
    ``energy_loss`` see :class:`TrainOptions`."""
    mask = batch["el_mask"][:, 0] > 0
    o = out[mask]
    cls = batch["cls"][mask]
    w = weights[cls]
    real = cls != CLS_NONE
    bce = F.binary_cross_entropy_with_logits(o[:, 0], real.float(), reduction="none")
    loss = (bce * w).sum() / w.sum()
    if real.any():
        r = o[real]
        loss = loss + (focal.per_entry(r[:, 1:6], cls[real] - 1) * w[real]).sum() / w[real].sum()
        pred, target = r[:, 6:11], batch["reg"][mask][real]
        if energy_loss == "log":
            per_entry = F.huber_loss(pred, target, reduction="none").mean(1)
        else:
            # squared error of the ratios: the minimum is the mean ratio (an unbiased
            # energy sum), not the median or the geometric mean of the log's Huber
            ratio = target[:, :2].exp().clamp(max=_MAX_RATIO)
            pred_ratio = pred[:, :2].clamp(max=math.log(_MAX_RATIO)).exp()
            per_entry = (
                F.mse_loss(pred_ratio, ratio, reduction="none").sum(1)
                + F.huber_loss(pred[:, 2:], target[:, 2:], reduction="none").sum(1)
            ) / 5
        reg_weight = batch["reg_weight"][mask][real]
        loss = loss + (per_entry * reg_weight).sum() / reg_weight.sum()
        loss = loss + F.cross_entropy(r[:, 11:14], batch["charge"][mask][real])
    return loss


def _build(options: dict[str, Any]) -> MLPF:
    model = build_model("mlpf", {"el_features": len(FEATURES), "el_mask": 1}, 6, **options)
    assert isinstance(model, MLPF)
    return model


def _sized_batches(
    el: Elements, opts: TrainOptions
) -> tuple[ElementArrays, list[dict[str, torch.Tensor]]]:
    """The element arrays of ``el`` and all its events in padded training batches; events
    of similar size share a batch (less padding)."""
    arr = element_features(el)
    targets = _targets(el, arr, opts.regression_pt_power)
    order = np.argsort(arr.counts, kind="stable")
    batches = [
        _batches(arr, targets, order[i : i + opts.batch_events], opts.bin_size)
        for i in range(0, order.size, opts.batch_events)
    ]
    return arr, batches


def _class_weights(cls: np.ndarray, power: float) -> torch.Tensor:
    """Per class ``frequency ** -power``, normalised to a mean of 1 over the elements."""
    freq = np.bincount(cls, minlength=6).astype(np.float64)
    w = np.where(freq > 0, np.maximum(freq, 1.0) ** -power, 0.0)
    w = w * cls.size / (w * freq).sum()
    return torch.tensor(w, dtype=torch.float32)


def _schedule(kind: str, steps: int) -> Any:
    """The learning-rate factor per optimiser step (for ``LambdaLR``)."""
    warm = max(1, steps // 20)

    def factor(step: int) -> float:
        if kind == "constant":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))

    return factor


def _choose_threshold(
    out: np.ndarray, arr: ElementArrays, el: Elements, track_momentum: bool
) -> float:
    """The particle-probability threshold with the narrowest jet pT response (IQR) on
    validation events (0.5 when no jet is matched)."""
    best, best_iqr = 0.5, math.inf
    for threshold in np.round(np.linspace(0.2, 0.8, 13), 2).tolist():
        parts = decode(out, arr, Decoding(float(threshold), track_momentum))
        iqr = jet_response(parts, el).get("response_iqr")
        if iqr is not None and iqr < best_iqr:
            best, best_iqr = float(threshold), iqr
    return best


def train_mlpf(opts: TrainOptions) -> Path:
    """Train MLPF on ``opts.data`` into the run dir ``opts.out``; returns the model path."""
    device = select_device(opts.device, key="device")
    if device.type == "cpu":
        retain_freed_memory()
    use_amp = opts.amp and device.type == "cuda"
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    table = _load_table(opts.data)
    n_val = round(opts.val_fraction * len(table))
    perm = rng.permutation(len(table))
    el = Elements.from_table(table[np.sort(perm[n_val:])])
    el_val = Elements.from_table(table[np.sort(perm[:n_val])]) if n_val else None
    arr, batches = _sized_batches(el, opts)
    arr_val, val_batches = _sized_batches(el_val, opts) if el_val is not None else (None, [])
    model_options = {"width": opts.width, "n_layers": opts.n_layers, "bin_size": opts.bin_size}
    model = _build(model_options)
    feats = torch.from_numpy(arr.features).double()
    model.set_input_scaling(feats.mean(0).float(), feats.std(0).float())
    model.to(device)
    weights = _class_weights(el.target["class"].astype(np.int64), opts.class_weight_power)
    weights = weights.to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, _schedule(opts.lr_schedule, opts.epochs * len(batches))
    )
    focal = FocalLoss(opts.focal_gamma)
    make_dir(opts.out)
    write_json_atomic(
        opts.out / "options.json", {**json.loads(opts.model_dump_json()), "model": model_options}
    )
    history: list[dict[str, Any]] = []
    start = time.perf_counter()
    for epoch in range(opts.epochs):
        model.train()
        total = 0.0
        for g in rng.permutation(len(batches)):
            batch = _to(batches[g], device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                out = model(batch["el_features"], batch["el_mask"])
            loss = _loss(out.float(), batch, focal, weights, opts.energy_loss)
            optim.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optim)
            scaler.update()
            sched.step()
            total += loss.item()
        entry = {"epoch": epoch, "train_loss": total / len(batches)}
        if val_batches:
            model.eval()
            with torch.no_grad():
                val = [
                    _loss(
                        model(b["el_features"], b["el_mask"]), b, focal, weights, opts.energy_loss
                    ).item()
                    for b in (_to(b, device) for b in val_batches)
                ]
            entry["val_loss"] = float(np.mean(val))
        history.append({**entry, "wall_s": time.perf_counter() - start})
    model.eval()
    threshold = opts.threshold
    if threshold is None:
        threshold = (
            _choose_threshold(predict(model, arr_val), arr_val, el_val, opts.track_momentum)
            if el_val is not None and arr_val is not None
            else 0.5
        )
    with atomic_path(opts.out / "history.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    path = opts.out / "model.pt"
    with atomic_path(path) as tmp:
        torch.save(
            {
                "options": model_options,
                "state": {k: v.cpu() for k, v in model.state_dict().items()},
                "decoding": asdict(Decoding(threshold, opts.track_momentum)),
            },
            tmp,
        )
    return path


class _ModelOptions(BaseModel):
    """The network options saved in ``model.pt`` (bounded: the file may come from anyone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(gt=0, le=4096)
    n_layers: int = Field(gt=0, le=64)
    bin_size: int = Field(ge=2, le=4096)


def _saved(run: Path) -> dict[str, Any]:
    """``run/model.pt``, loaded as tensors only (``weights_only=True``: nothing in the file
    is run) and checked: ``options``, ``state`` (name -> tensor) and ``decoding``."""
    path = run / "model.pt"
    if not path.is_file():
        raise ConfigError(f"no model.pt in '{run}' (run `heptagon mlpf train` first)", key="run")
    saved = load_checkpoint(path)
    for key, kind in (("options", dict), ("state", dict), ("decoding", dict)):
        if not isinstance(saved.get(key), kind):
            raise DataError(f"missing or not a {kind.__name__}", path, key)
    try:
        saved["options"] = _ModelOptions.model_validate(saved["options"]).model_dump()
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(map(str, ("options", *first["loc"])))
        raise DataError(first["msg"], path, key) from None
    if not all(isinstance(v, torch.Tensor) for v in saved["state"].values()):
        raise DataError("holds something other than tensors", path, "state")
    dec = saved["decoding"]
    threshold, track = dec.get("threshold"), dec.get("track_momentum")
    if set(dec) != {"threshold", "track_momentum"} or not (
        isinstance(threshold, float) and 0 < threshold < 1 and isinstance(track, bool)
    ):
        raise DataError(
            "expected a threshold in (0, 1) and a boolean track_momentum", path, "decoding"
        )
    return saved


def load_mlpf(run: Path) -> MLPF:
    """The trained model of a run dir, in evaluation mode on CUDA when there is one."""
    saved = _saved(run)
    model = _build(saved["options"])
    try:
        model.load_state_dict(saved["state"])
    except RuntimeError as err:
        # torch lists every missing / unexpected / misshapen tensor: name the first
        detail = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise DataError(
            f"the tensors do not fit the saved options ({detail})", run / "model.pt", "state"
        ) from None
    return model.eval().to(select_device())


def load_decoding(run: Path) -> Decoding:
    """The decoding of a run dir (its threshold chosen at training)."""
    return Decoding(**_saved(run)["decoding"])


def predict(model: MLPF, arr: ElementArrays, batch_events: int = 16) -> np.ndarray:
    """Per-element outputs ``(n_elements, len(OUTPUTS))`` (flat, element order), computed
    on the model's device."""
    device = next(model.parameters()).device
    outs = []
    n_events = arr.counts.size
    empty = {"cls": np.zeros(arr.counts.sum(), dtype=np.int64)}
    with torch.no_grad():
        for lo in range(0, n_events, batch_events):
            events = np.arange(lo, min(lo + batch_events, n_events))
            batch = _batches(arr, empty, events, model.bin_size)
            out = model(*(batch[k].to(device) for k in ("el_features", "el_mask"))).cpu().numpy()
            mask = batch["el_mask"][:, 0].numpy() > 0
            outs.append(out[mask])
    return np.concatenate(outs) if outs else np.zeros((0, 14), np.float32)


@dataclass(frozen=True)
class Decoding:
    """How :func:`decode` makes particles of the per-element outputs."""

    #: the particle-probability threshold
    threshold: float = 0.5
    #: charged particles from tracks keep the track's momentum and direction
    track_momentum: bool = False


def decode(out: np.ndarray, arr: ElementArrays, decoding: Decoding | None = None) -> PFParticles:
    """Particles from per-element outputs: elements with a particle probability above the
    threshold give one particle of the most probable class. Neutral particles are
    massless: their pT is the regressed energy over ``cosh(eta)``."""
    dec = decoding or Decoding()
    n = arr.counts.size
    event = np.repeat(np.arange(n), arr.counts)
    local = np.arange(event.size) - np.repeat(np.cumsum(arr.counts) - arr.counts, arr.counts)
    sel = out[:, 0] > math.log(dec.threshold / (1 - dec.threshold))
    o = out[sel].astype(np.float64)
    cls = o[:, 1:6].argmax(1) + 1
    charge = o[:, 11:14].argmax(1) - 1
    charge = np.where(np.isin(cls, _CHARGED), np.where(charge == 0, 1, charge), 0)
    if dec.track_momentum:
        # a track's outputs regress nothing: its own kinematics
        track = arr.features[sel, FEATURES.index("is_track")] > 0
        o[track, 6:11] = (0.0, 0.0, 0.0, 0.0, 1.0)
    phi = arr.phi[sel] + np.arctan2(o[:, 9], o[:, 10])
    eta = arr.eta[sel] + o[:, 8]
    energy = arr.energy[sel] * np.exp(o[:, 7])
    pt = np.where(np.isin(cls, _CHARGED), arr.pt[sel] * np.exp(o[:, 6]), energy / np.cosh(eta))
    return PFParticles(
        counts=np.bincount(event[sel], minlength=n),
        cls=cls,
        pt=pt,
        eta=eta,
        phi=np.arctan2(np.sin(phi), np.cos(phi)),
        energy=energy,
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
    decoding = load_decoding(run)
    el = load_elements(data)
    arr = element_features(el)
    start = time.perf_counter()
    out = predict(model, arr)
    wall = time.perf_counter() - start
    result = {
        "events": int(arr.counts.size),
        "mean_elements": float(arr.counts.mean()),
        "mlpf_ms_per_event": 1e3 * wall / max(arr.counts.size, 1),
        "mlpf_decoding": asdict(decoding),
        "mlpf": pf_metrics(decode(out, arr, decoding), el),
        "pf": pf_metrics(rule_based_pf(el), el),
        "truth": pf_metrics(_truth(el), el),
    }
    write_json_atomic(make_dir(run / "eval") / "metrics.json", result)
    return result


def export_mlpf(model: MLPF, path: Path, n_features: int = len(FEATURES)) -> Path:
    """ONNX of ``model`` (inputs ``el_features``, ``el_mask``; output ``output``) with
    dynamic batch and element axes (the element count must stay a multiple of the model's
    ``bin_size``)."""
    model = model.eval()
    n = 2 * model.bin_size
    device = next(model.parameters()).device
    args = (torch.zeros(1, n_features, n, device=device), torch.ones(1, 1, n, device=device))
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
