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
- :func:`detector_of`: the detector an element sample was made with (its manifest's
  ``detector``), what the linking of :func:`element_features` and the rule-based PF of
  :func:`evaluate_mlpf` run with: a sample made with other cell sizes or resolutions
  (``heptagon mlpf generate --detector-set``) is linked and reconstructed with its own.
- :mod:`heptagon.apps.mlpf.training`: training (``heptagon mlpf train``) on heptagon's
  trainer; the run dir holds ``model.pt`` (the best weights, with the :class:`Decoding`).
- :func:`decode`: per-element outputs -> :class:`~heptagon.apps.mlpf.pf.PFParticles`
  (with ``track_momentum``, charged particles from tracks keep the measured momentum, as
  the rule-based PF's do: the network decides which particle each element is, and
  regresses the towers' energies).
- :func:`evaluate_mlpf`: MLPF and the rule-based PF on another sample, the metrics of
  :mod:`heptagon.apps.mlpf.metrics` for both (and for the targets themselves) in
  ``RUN/eval/metrics.json``.
- :func:`export_mlpf`: ONNX with dynamic batch and element axes, checked against
  PyTorch before it is written (:func:`heptagon.publish.onnx.check_export`).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from heptagon.apps.mlpf.metrics import pf_metrics, with_puppi
from heptagon.apps.mlpf.pf import PFParticles, link_elements, rule_based_pf
from heptagon.artifacts.manifest import ElementManifest, load_manifest
from heptagon.config import validate_in_file
from heptagon.errors import ConfigError, DataError
from heptagon.generate.detector import DetectorConfig
from heptagon.generate.elements import CLS_CH, CLS_ELECTRON, CLS_MUON, CLS_NONE, Elements
from heptagon.io import atomic_path, make_dir, write_json_atomic
from heptagon.models import build_model
from heptagon.models.mlpf import MLPF, OUTPUTS
from heptagon.physics.arrays import owner_index
from heptagon.train.device import select_device
from heptagon.train.rundir import load_checkpoint

__all__ = [
    "EXPORT_TOLERANCE",
    "FEATURES",
    "Decoding",
    "ElementArrays",
    "batches_of",
    "build_mlpf",
    "decode",
    "detector_of",
    "element_features",
    "element_targets",
    "evaluate_mlpf",
    "export_mlpf",
    "load_decoding",
    "load_elements",
    "load_mlpf",
    "load_table",
    "predict",
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


def _track_columns(tr: Any, links: Any, t_pt: np.ndarray, t_eta: np.ndarray) -> tuple[Any, ...]:
    """The :data:`FEATURES` columns of the tracks (``t_pt``, ``t_eta`` as float64)."""
    n_tr = t_pt.size
    ones_tr, zeros_tr = np.ones(n_tr), np.zeros(n_tr)
    return (
        ones_tr,
        zeros_tr,
        np.log(t_pt),
        t_eta,
        np.sin(tr["phi"]),
        np.cos(tr["phi"]),
        np.log(_track_energy(t_pt, t_eta)),
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


def _tower_columns(tw: Any, links: Any, w_eta: np.ndarray, w_e: np.ndarray) -> tuple[Any, ...]:
    """The :data:`FEATURES` columns of the towers (``w_eta``, energy ``w_e`` as float64)."""
    n_tw = w_eta.size
    zeros_tw = np.zeros(n_tw)
    linked = links.link >= 0
    n_linked = np.bincount(links.link[linked], minlength=n_tw)
    linked_p = np.bincount(links.link[linked], weights=links.p[linked], minlength=n_tw)
    left = links.left_ecal + links.left_hcal
    return (
        zeros_tw,
        np.ones(n_tw),
        np.log(w_e / np.cosh(w_eta)),
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


def _track_energy(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """A track's energy under the charged-pion mass hypothesis (GeV)."""
    return np.asarray(np.sqrt((pt * np.cosh(eta)) ** 2 + _PION_MASS**2))


def element_features(el: Elements, detector: DetectorConfig | None = None) -> ElementArrays:
    """Model inputs and reference kinematics of every element, linked with ``detector``'s
    cells and resolutions (None: the nominal detector; a sample's: :func:`detector_of`)."""
    tr, tw = el.track, el.tower
    links = link_elements(el, detector)
    f64 = np.float64
    t_pt, t_eta = tr["pt"].astype(f64), tr["eta"].astype(f64)
    w_eta = tw["eta"].astype(f64)
    w_e = tw["eEcal"].astype(f64) + tw["eHcal"].astype(f64)
    # the towers' reference energy: what the linked tracks leave (at least a fraction)
    w_ref = np.maximum(
        np.maximum(links.left_ecal, 0) + np.maximum(links.left_hcal, 0), _REFERENCE_FLOOR * w_e
    )
    order = np.argsort(
        np.concatenate([owner_index(el.n_tracks), owner_index(el.n_towers)]),
        kind="stable",
    )

    def cat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(a, f64), np.asarray(b, f64)])[order]

    columns = zip(
        _track_columns(tr, links, t_pt, t_eta), _tower_columns(tw, links, w_eta, w_e), strict=True
    )
    return ElementArrays(
        counts=el.n_tracks + el.n_towers,
        features=np.stack([cat(a, b) for a, b in columns], axis=1).astype(np.float32),
        pt=cat(t_pt, w_ref / np.cosh(w_eta)),
        eta=cat(t_eta, w_eta),
        phi=cat(tr["phi"], tw["phi"]),
        energy=cat(_track_energy(t_pt, t_eta), w_ref),
    )


def element_targets(el: Elements, arr: ElementArrays, pt_power: float) -> dict[str, np.ndarray]:
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
    event = owner_index(counts)
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


def _element_manifest(data: Path) -> ElementManifest:
    """The manifest of an element sample dir (a :class:`DataError` for another dataset)."""
    manifest = load_manifest(data)
    if not isinstance(manifest, ElementManifest):
        raise DataError("not an element sample (made by `heptagon mlpf generate`)", file=data)
    return manifest


def detector_of(data: Path) -> DetectorConfig:
    """The detector the element sample dir ``data`` was made with: its manifest's
    ``detector`` settings as a :class:`~heptagon.generate.detector.DetectorConfig` (a field
    the manifest does not record, as the tracking fields added later and left off, keeps its
    default); a :class:`DataError` naming the manifest and the field when they are not
    valid settings."""
    detector = _element_manifest(data).detector
    return validate_in_file(DetectorConfig, detector, data / "manifest.json", "detector")


def load_table(data: Path) -> ak.Array:
    """The events of an element sample dir as one table (every shard, checked)."""
    manifest = _element_manifest(data)
    if not manifest.files:
        raise DataError("lists no shards", file=data / "manifest.json", key="files")
    return ak.concatenate([_read_shard(data / rec.file) for rec in manifest.files])


def load_elements(data: Path) -> Elements:
    """Every event of an element sample dir (``heptagon mlpf generate``)."""
    return Elements.from_table(load_table(data))


def batches_of(
    arr: ElementArrays, targets: dict[str, np.ndarray], events: np.ndarray, bin_size: int
) -> dict[str, torch.Tensor]:
    """Padded tensors of the events ``events``: ``el_features``, ``el_mask`` and each
    target, the element axis a multiple of ``bin_size``."""
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


def build_mlpf(options: dict[str, Any]) -> MLPF:
    """An untrained MLPF on :data:`FEATURES` with the network ``options`` (``width``,
    ``n_layers``, ``bin_size``)."""
    model = build_model("mlpf", {"el_features": len(FEATURES), "el_mask": 1}, 6, **options)
    assert isinstance(model, MLPF)
    return model


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
    saved["options"] = validate_in_file(
        _ModelOptions, saved["options"], path, "options"
    ).model_dump()
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
    model = build_mlpf(saved["options"])
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
            batch = batches_of(arr, empty, events, model.bin_size)
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
    event = owner_index(arr.counts)
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
    event = owner_index(n_el)
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
    ``run/eval/metrics.json`` (with the MLPF inference time per event). A sample with
    pile-up also gets MLPF's and the rule-based PF's with PUPPI on their particles
    (``mlpf_puppi``, ``pf_puppi``: :func:`~heptagon.apps.mlpf.metrics.with_puppi`). The
    linking and the rule-based PF use the detector ``data`` was made with
    (:func:`detector_of`)."""
    model = load_mlpf(run)
    decoding = load_decoding(run)
    el = load_elements(data)
    mu = _element_manifest(data).pileup
    detector = detector_of(data)
    arr = element_features(el, detector)
    start = time.perf_counter()
    out = predict(model, arr)
    wall = time.perf_counter() - start
    particles = {"mlpf": decode(out, arr, decoding), "pf": rule_based_pf(el, detector)}
    if mu > 0:
        particles |= {f"{k}_puppi": with_puppi(v, el, mu) for k, v in particles.items()}
    result = {
        "events": int(arr.counts.size),
        "mean_elements": float(arr.counts.mean()),
        "pileup": mu,
        "mlpf_ms_per_event": 1e3 * wall / max(arr.counts.size, 1),
        "mlpf_decoding": asdict(decoding),
        **{k: pf_metrics(v, el) for k, v in particles.items()},
        "truth": pf_metrics(_truth(el), el),
    }
    write_json_atomic(make_dir(run / "eval") / "metrics.json", result)
    return result


#: |ONNX Runtime - PyTorch| allowed on any output of the export check
EXPORT_TOLERANCE = 1e-4


def _export_cases(model: MLPF, n_features: int) -> dict[str, dict[str, np.ndarray]]:
    """What an export is checked on: elements drawn around the model's input scaling
    (``feature_mean + feature_std * N(0, 1)``, seeded) at batch 1 and 3, with 2 and 5 bins
    of elements, the last half bin of each event padded (masked, zero features)."""
    gen = np.random.default_rng(0)
    mean = model.feature_mean.detach().cpu().numpy()[None, :, None]
    std = model.feature_std.detach().cpu().numpy()[None, :, None]
    cases = {}
    for batch, bins in ((1, 2), (3, 5)):
        n = bins * model.bin_size
        mask = np.ones((batch, 1, n), np.float32)
        mask[:, :, n - model.bin_size // 2 :] = 0.0
        x = mean + std * gen.standard_normal((batch, n_features, n))
        cases[f"batch{batch}_elements{n}"] = {
            "el_features": (x * mask).astype(np.float32),
            "el_mask": mask,
        }
    return cases


def export_mlpf(model: MLPF, path: Path, n_features: int = len(FEATURES)) -> Path:
    """ONNX of ``model`` (inputs ``el_features``, ``el_mask``; output ``output``) with
    dynamic batch and element axes (the element count must stay a multiple of the model's
    ``bin_size``). Before it is written the export is checked
    (:func:`heptagon.publish.onnx.check_export`: ``onnx.checker``, ONNX Runtime loads it,
    its outputs within :data:`EXPORT_TOLERANCE` of PyTorch's on :func:`_export_cases`);
    a failed check raises :class:`~heptagon.errors.ExportError` and writes nothing."""
    import onnx  # the export's libraries, only when exporting

    from heptagon.publish.onnx import check_export

    model = model.eval()
    n = 2 * model.bin_size
    device = next(model.parameters()).device
    args = (torch.zeros(1, n_features, n, device=device), torch.ones(1, 1, n, device=device))
    axes = {
        "el_features": {0: "batch", 2: "elements"},
        "el_mask": {0: "batch", 2: "elements"},
        "output": {0: "batch", 1: "elements"},
    }

    def reference(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            tensors = (torch.from_numpy(inputs[k]).to(device) for k in ("el_features", "el_mask"))
            return np.asarray(model(*tensors).float().cpu().numpy())

    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
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
        check_export(
            onnx.load_model(tmp),
            reference,
            _export_cases(model, n_features),
            len(OUTPUTS),
            EXPORT_TOLERANCE,
        )
    return path
