"""``heptagon sf generate``: the tag-and-probe sample of a top / W tagger's scale factor,
semileptonic ttbar, and its pseudo-data.

Pythia makes ttbar with one W decaying to an electron or muon and the other to quarks
(``24:onPosIfAny = 11 13``, ``24:onNegIfAny = 1 2 3 4 5``: the lepton is always positive,
which the tagging does not see), with ``PhaseSpace:pTHatMin`` 0.8 times the probe's pT
threshold. Each event is reconstructed as an event sample (:mod:`heptagon.generate.events`:
the same detector, leptons, AK4 jets with b tag and MET) and kept when

- **tag**: exactly one isolated lepton, with pT > :data:`TAG_LEPTON_PT_MIN`; MET >
  :data:`TAG_MET_MIN`; at least one b-tagged AK4 jet (``Jet_btag > 0.5``) in the lepton's
  hemisphere (``|dphi| <`` :data:`HEMISPHERE`);
- **probe**: the hardest anti-kT R = 0.8 jet (of the lepton-cleaned candidates; pT >
  ``probe_pt_min``, ``|eta| < 2``) in the opposite hemisphere (``|dphi| >=``
  :data:`HEMISPHERE`).

One entry per kept event: the probe jet in the jet samples' schema (``part_*``, ``jet_*``:
the demo's top taggers score it with their own data config), the tag (``tag_lepton_pt``,
``tag_lepton_eta``, ``tag_lepton_phi``, ``tag_lepton_pdgid``, ``MET_pt``,
``tag_nbjets``), ``event``,
``xsec_weight_pb`` (the shard's cross section over the events it generated and the shard
count: a sum of the weights is a cross section in pb) and, in simulation, the probe's
truth ``probe_category``: 0 a merged top (the hadronic top and all its visible decay
products within dR < 0.8 of the jet: the top taggers' signal definition), 1 a merged W
(the W and its quarks, not the b), 2 anything else.

**Pseudo-data** (``--pseudo-data SEED``): simulation the analyst does not know, drawn from
SEED: another final-state shower ``TimeShower:alphaSvalue`` and string fragmentation
``StringZ:aLund``, and a mis-calibrated detector (the calibration knobs of
:class:`~heptagon.generate.detector.DetectorConfig`: energy scales and resolutions of
tracks, ECAL and HCAL, tracking efficiency), each within a plausible range
(:data:`PSEUDO_DATA_RANGES`). The shards carry no truth (no ``probe_category``, no weight):
the truth goes to ``sealed/<shard>.parquet`` and the settings into the manifest's
``sealed`` block, base64-encoded JSON, so that they are not read by accident: ``heptagon sf
reveal DIR`` prints them, and only ``heptagon sf closure`` reads the sealed truth. It is a
blind, not a secret: the encoding is not encryption.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
from pydantic import Field

from heptagon.artifacts.scale_factors import SealedTruth, TagProbeManifest
from heptagon.errors import ConfigError, DataError
from heptagon.generate.detector import DetectorConfig, apply_detector
from heptagon.generate.events import (
    BTagConfig,
    LeptonConfig,
    jet_branches,
    missing_pt,
    select_candidates,
    select_leptons,
)
from heptagon.generate.jets import JetSelection, build_jets
from heptagon.generate.options import SampleOptions
from heptagon.generate.processes import EVENT_PROCESSES, TruthRule
from heptagon.generate.run import BATCH_EVENTS, COMMON_SETTINGS, ECM_GEV, make_pythia, versions
from heptagon.generate.shards import branch_names, prepare_out, run_shards, shard_seed, write_table
from heptagon.generate.truth import EventRecord, TruthObjects, truth_objects
from heptagon.io import sha256sum
from heptagon.physics.kinematics import delta_phi, delta_r

__all__ = [
    "CATEGORIES",
    "HEMISPHERE",
    "PSEUDO_DATA_RANGES",
    "SAMPLE",
    "TAG_LEPTON_PT_MIN",
    "TAG_MET_MIN",
    "TagProbeOptions",
    "TagProbeSummary",
    "generate_tag_probe",
    "hidden_settings",
    "read_sealed",
    "sealed_truth",
    "tag_and_probe",
]

#: the sample's name
SAMPLE = "ttbar-semilep"
#: the probe's truth categories, by ``probe_category`` value
CATEGORIES = ("top", "w", "other")
#: the tag: lepton pT (GeV) and MET (GeV) thresholds; the hemisphere cut |dphi| (rad)
TAG_LEPTON_PT_MIN = 30.0
TAG_MET_MIN = 30.0
HEMISPHERE = 2.0
_BTAG_WP = 0.5
_PROBE_RADIUS = 0.8
_PROBE_ETA_MAX = 2.0
_AK4 = JetSelection(radius=0.4, pt_min=25.0, pt_max=np.inf, eta_max=2.5)
_SEMILEPTONIC = ("24:onMode = off", "24:onPosIfAny = 11 13", "24:onNegIfAny = 1 2 3 4 5")
_MB_TO_PB = 1e9
_MAX_EMPTY_BATCHES = 50

#: pseudo-data: each hidden setting's range (drawn uniformly from the seed); Pythia
#: settings by name, detector knobs by DetectorConfig field. Monash: alphaS(FSR) 0.1365,
#: aLund 0.68; the detector ranges are about 1.5 times the systematic variations' sizes
#: of heptagon.physics.systematics (resolutions only worse, efficiency only lower)
PSEUDO_DATA_RANGES: dict[str, tuple[float, float]] = {
    "TimeShower:alphaSvalue": (0.120, 0.150),
    "StringZ:aLund": (0.55, 0.80),
    "jes_track": (0.985, 1.015),
    "jes_ecal": (0.985, 1.015),
    "jes_hcal": (0.955, 1.045),
    "jer_track": (1.0, 1.15),
    "jer_ecal": (1.0, 1.15),
    "jer_hcal": (1.0, 1.15),
    "track_eff_scale": (0.95, 1.0),
}


class TagProbeOptions(SampleOptions):
    """Everything that defines a tag-and-probe sample (``heptagon sf generate``)."""

    sample: str = Field(SAMPLE, description="The sample: ttbar-semilep.")
    probes: int = Field(gt=0, description="Tag-and-probe events (probe jets) to keep.")
    probe_pt_min: float = Field(300.0, gt=0, description="Lowest probe-jet pT, GeV.")
    mpi: bool = Field(False, description="Multi-parton interactions (off: as top-vs-qcd).")
    shard_size: int = Field(1000, gt=0, description="Probe jets per shard.")
    pseudo_data: int | None = Field(
        None, ge=0, description="Make pseudo-data with hidden settings drawn from this seed."
    )

    def model_post_init(self, context: Any, /) -> None:
        if self.sample != SAMPLE:
            raise ConfigError(f"unknown tag-and-probe sample '{self.sample}'", key="sample")
        if self.detector == "none":
            raise ConfigError("a tag-and-probe sample needs the detector", key="detector")
        if self.pileup is not None:
            raise ConfigError("tag-and-probe samples have no pile-up yet", key="pileup")
        if self.pseudo_data is not None and (
            self.variation or self.weight_variations or self.detector_set
        ):
            raise ConfigError(
                "pseudo-data take no systematic variation or --detector-set: their detector "
                "is hidden, they are the 'data'",
                key="pseudo_data",
            )


def hidden_settings(seed: int) -> tuple[tuple[str, ...], dict[str, float]]:
    """The pseudo-data's hidden Pythia settings and detector knobs drawn from ``seed``."""
    rng = np.random.default_rng([seed, 19])
    drawn = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in PSEUDO_DATA_RANGES.items()}
    pythia = tuple(f"{k} = {v:.4f}" for k, v in drawn.items() if ":" in k)
    return pythia, {k: round(v, 4) for k, v in drawn.items() if ":" not in k}


def _lepton_phi(leptons: dict[str, ak.Array]) -> tuple[np.ndarray, ...]:
    """Per event: the number of leptons and the leading one's pT, eta, phi, |PDG id|."""
    pt = ak.concatenate([leptons["Muon_pt"], leptons["Electron_pt"]], axis=1)
    eta = ak.concatenate([leptons["Muon_eta"], leptons["Electron_eta"]], axis=1)
    phi = ak.concatenate([leptons["Muon_phi"], leptons["Electron_phi"]], axis=1)
    pdg = ak.concatenate(
        [ak.full_like(leptons["Muon_pt"], 13), ak.full_like(leptons["Electron_pt"], 11)], axis=1
    )
    order = ak.argsort(pt, axis=1, ascending=False)
    first = [ak.fill_none(ak.firsts(a[order]), 0.0) for a in (pt, eta, phi, pdg)]
    return (ak.to_numpy(ak.num(pt)), *(ak.to_numpy(a) for a in first))


def _merged(
    event: np.ndarray, eta: np.ndarray, phi: np.ndarray, truth: TruthObjects, n_events: int
) -> np.ndarray:
    """Whether a truth object of the probe's event has its axis and all its visible
    products within dR < 0.8 of the probe (one probe per event)."""
    probe_of = np.full(n_events, -1)
    probe_of[event] = np.arange(event.size)
    p = probe_of[truth.event]
    ok = p >= 0
    q = np.maximum(p, 0)
    ok &= delta_r(eta[q], phi[q], truth.eta, truth.phi) < _PROBE_RADIUS
    owner = q[truth.prod_owner]
    outside = delta_r(eta[owner], phi[owner], truth.prod_eta, truth.prod_phi) >= _PROBE_RADIUS
    ok &= np.bincount(truth.prod_owner, weights=outside, minlength=p.size) == 0
    merged = np.zeros(event.size, dtype=bool)
    merged[p[ok]] = True
    return merged


def tag_and_probe(
    record: EventRecord, detector: DetectorConfig, probe: JetSelection, rng: np.random.Generator
) -> dict[str, Any]:
    """The tag-and-probe entries of a batch of events (module docstring), with their
    ``probe_category`` and ``event`` (the index in the batch)."""
    n = len(record.counts)
    cands = apply_detector(record.final_state(), detector, rng)
    leptons, chosen = select_leptons(cands, LeptonConfig(), rng, None)
    keep = np.ones(cands.px.size, dtype=bool)
    keep[chosen] = False
    inputs = select_candidates(cands, keep)
    ak4 = jet_branches(inputs, record, _AK4, BTagConfig())
    met = missing_pt(cands)[0]
    n_lep, lep_pt, lep_eta, lep_phi, lep_pdg = _lepton_phi(leptons)
    same_side = np.abs(delta_phi(ak4["Jet_phi"], lep_phi)) < HEMISPHERE
    n_b = ak.to_numpy(ak.sum((ak4["Jet_btag"] > _BTAG_WP) & same_side, axis=1))
    tag = (n_lep == 1) & (lep_pt > TAG_LEPTON_PT_MIN) & (met > TAG_MET_MIN) & (n_b > 0)
    fat = build_jets(inputs, probe)
    event = np.asarray(fat["event"])
    jet_pt = np.asarray(fat["jet_pt"])
    opposite = np.abs(delta_phi(np.asarray(fat["jet_phi"]), lep_phi[event])) >= HEMISPHERE
    ok = np.flatnonzero(tag[event] & opposite)
    ok = ok[np.lexsort((-jet_pt[ok], event[ok]))]
    ok = ok[np.r_[True, event[ok][1:] != event[ok][:-1]]] if ok.size else ok  # the hardest
    out = {k: v[ok] for k, v in fat.items()}
    ev = event[ok]
    eta, phi = np.asarray(out["jet_eta"]), np.asarray(out["jet_phi"])
    top = _merged(ev, eta, phi, truth_objects(record, TruthRule("resonance", 6, 0)), n)
    w = _merged(ev, eta, phi, truth_objects(record, TruthRule("resonance", 24, 0)), n)
    out["probe_category"] = np.where(top, 0, np.where(w, 1, 2)).astype(np.int32)
    out["tag_lepton_pt"] = lep_pt[ev].astype(np.float32)
    out["tag_lepton_eta"] = lep_eta[ev].astype(np.float32)
    out["tag_lepton_phi"] = lep_phi[ev].astype(np.float32)
    out["tag_lepton_pdgid"] = lep_pdg[ev].astype(np.int32)
    out["MET_pt"] = met[ev].astype(np.float32)
    out["tag_nbjets"] = n_b[ev].astype(np.int32)
    return out


@dataclass(frozen=True)
class _Spec:
    """One shard of a tag-and-probe sample."""

    index: int
    n_shards: int
    n_probes: int
    seed: int
    settings: tuple[str, ...]
    detector: dict[str, Any]
    probe: JetSelection
    path: str
    format: str
    sealed: str | None  # pseudo-data: where the truth goes
    weights: tuple[str, ...] = ()

    @property
    def entries(self) -> int:
        """Probe jets the shard holds."""
        return self.n_probes


def _run_shard(spec: _Spec, report: Callable[[int], None] | None = None) -> Any:
    from heptagon.artifacts.manifest import ShardRecord
    from heptagon.generate.run import shower_weights

    pythia = make_pythia(spec.settings)
    rng = np.random.default_rng(spec.seed)
    det = DetectorConfig(**spec.detector)
    parts: list[dict[str, Any]] = []
    got = n_events = empty = 0
    while got < spec.n_probes:
        batch = pythia.nextBatch(BATCH_EVENTS)
        record = EventRecord.from_batch(batch.prt)
        part = tag_and_probe(record, det, spec.probe, rng)
        part.update(shower_weights(pythia, batch, spec.weights, np.asarray(part["event"])))
        part["event"] = np.asarray(part["event"]) + n_events
        n_events += len(record.counts)
        n = len(part["jet_pt"])
        empty = 0 if n else empty + 1
        if empty >= _MAX_EMPTY_BATCHES:
            raise ConfigError(
                f"no tag-and-probe event in {empty * BATCH_EVENTS} events", key="probe_pt_min"
            )
        parts.append(part)
        got += n
        if report is not None:
            report(min(n, spec.n_probes - (got - n)))
    table = {k: ak.concatenate([p[k] for p in parts])[: spec.n_probes] for k in parts[0]}
    info = pythia.infoPython()
    sigma = info.sigmaGen() * _MB_TO_PB
    table["xsec_weight_pb"] = np.full(spec.n_probes, sigma / n_events / spec.n_shards)
    path = Path(spec.path)
    if spec.sealed is not None:  # pseudo-data: the truth and the weight leave the shard
        truth = {"probe_category": table.pop("probe_category")}
        table.pop("xsec_weight_pb")
        write_table(truth, Path(spec.sealed), "parquet")
    write_table(table, path, spec.format)
    return ShardRecord(
        file=f"shards/{path.name}",
        cls=SAMPLE,
        entries=spec.n_probes,
        sha256=sha256sum(path),
        seed=spec.seed,
        events_generated=n_events,
        jets_selected=got,
        sigma_gen_pb=sigma,
        sigma_err_pb=info.sigmaErr() * _MB_TO_PB,
        n_tried=int(info.nTried()),
        n_accepted=int(info.nAccepted()),
    )


def _process_settings(probe_pt_min: float) -> tuple[str, ...]:
    return (
        *EVENT_PROCESSES["ttbar"].settings,
        *_SEMILEPTONIC,
        f"PhaseSpace:pTHatMin = {0.8 * probe_pt_min:g}",
    )


def _plan(opts: TagProbeOptions) -> tuple[list[_Spec], dict[str, Any], dict[str, Any] | None]:
    probe = JetSelection(_PROBE_RADIUS, opts.probe_pt_min, np.inf, _PROBE_ETA_MAX)
    hidden: dict[str, Any] | None = None
    extra, knobs = opts.generator_settings(), opts.detector_knobs
    if opts.pseudo_data is not None:
        extra, knobs = hidden_settings(opts.pseudo_data)
        hidden = {"pseudo_data_seed": opts.pseudo_data, "pythia": list(extra), "detector": knobs}
    det = DetectorConfig(**knobs)
    ext = "parquet" if opts.format == "parquet" else "root"
    n_shards = -(-opts.probes // opts.shard_size)
    specs = []
    for i in range(n_shards):
        seed = shard_seed(opts.seed, SAMPLE, i)
        specs.append(
            _Spec(
                index=i,
                n_shards=n_shards,
                n_probes=min(opts.shard_size, opts.probes - i * opts.shard_size),
                seed=seed,
                settings=(
                    *COMMON_SETTINGS,
                    *extra,
                    f"PartonLevel:MPI = {'on' if opts.mpi else 'off'}",
                    *_process_settings(opts.probe_pt_min),
                    f"Random:seed = {seed}",
                ),
                detector=det.settings(),
                probe=probe,
                path=str(opts.out / "shards" / f"{SAMPLE}_{i:04d}.{ext}"),
                format=opts.format,
                sealed=(
                    None
                    if hidden is None
                    else str(opts.out / "sealed" / f"{SAMPLE}_{i:04d}.parquet")
                ),
                weights=opts.weight_names,
            )
        )
    settings: dict[str, Any] = {
        "sample": SAMPLE,
        "probes": opts.probes,
        "seed": opts.seed,
        "format": opts.format,
        "shard_size": opts.shard_size,
        "mpi": opts.mpi,
        "probe": {
            "algorithm": "anti-kt",
            "radius": _PROBE_RADIUS,
            "pt_min": opts.probe_pt_min,
            "eta_max": _PROBE_ETA_MAX,
        },
        "tag": {
            "lepton_pt_min": TAG_LEPTON_PT_MIN,
            "met_min": TAG_MET_MIN,
            "btag_wp": _BTAG_WP,
            "hemisphere_dphi": HEMISPHERE,
        },
        # pseudo-data: the settings file shows only a digest of what is hidden
        "detector": None,
        "hidden_sha256": None if hidden is None else _digest(hidden),
    }
    if hidden is None:
        settings["detector"] = det.settings()
        if opts.variation is not None:
            settings["variation"] = opts.variation
        settings["weight_variations"] = list(opts.weight_names)
    return specs, settings, hidden


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class TagProbeSummary:
    """What ``heptagon sf generate`` made."""

    out: Path
    manifest: TagProbeManifest
    wall_s: float
    skipped_shards: int


def generate_tag_probe(opts: TagProbeOptions, *, show_progress: bool = True) -> TagProbeSummary:
    """Generate (or finish generating) the tag-and-probe sample of ``opts`` in ``opts.out``."""
    specs, settings, hidden = _plan(opts)
    prepare_out(opts.out, settings)
    if hidden is not None:
        (opts.out / "sealed").mkdir(exist_ok=True)
    done = run_shards(
        specs,
        _run_shard,
        jobs=opts.jobs,
        scheduler=opts.scheduler,
        title=f"sf generate {SAMPLE}",
        unit="probes",
        show_progress=show_progress,
    )
    records = done.records
    sealed = None
    if hidden is not None:
        truth = {
            f"sealed/{Path(s.sealed).name}": sha256sum(Path(s.sealed))
            for s in specs
            if s.sealed is not None
        }
        sealed = SealedTruth.seal({**hidden, "truth_files": truth})
    sigma = np.array([r.sigma_gen_pb or 0.0 for r in records])
    variation = opts.variation_spec()
    manifest = TagProbeManifest(
        sample=SAMPLE,
        description="semileptonic ttbar tag-and-probe: the hadronic large-R jet as the probe",
        versions=versions(),
        generator={
            "beams_ecm_gev": ECM_GEV,
            "common_settings": list(COMMON_SETTINGS),
            "process_settings": list(_process_settings(opts.probe_pt_min)),
            "extra_settings": [] if hidden is not None else list(opts.generator_settings()),
        },
        seed=opts.seed,
        probes=opts.probes,
        shard_size=opts.shard_size,
        format=opts.format,
        mpi=opts.mpi,
        probe=settings["probe"],
        tag=settings["tag"],
        detector=settings["detector"],
        variation=None if variation is None else variation.record(),
        weight_variations=[] if hidden is not None else list(opts.weight_names),
        categories=list(CATEGORIES),
        pseudo_data=hidden is not None,
        sealed=sealed,
        events_generated=sum(r.events_generated or 0 for r in records),
        sigma_gen_pb=float(sigma.mean()),
        files=[r.listing() for r in records],
        branches=branch_names(opts.out / records[0].file, opts.format),
    )
    manifest.write(opts.out / "manifest.json")
    return TagProbeSummary(opts.out, manifest, done.wall_s, done.skipped)


def read_sealed(dataset: Path) -> tuple[TagProbeManifest, dict[str, Any]]:
    """The manifest of a pseudo-data dataset dir and its unsealed hidden settings (the
    truth files' checksums verified). :class:`DataError` for a simulation sample."""
    manifest = TagProbeManifest.read(dataset / "manifest.json")
    if manifest.sealed is None:
        raise DataError("is not pseudo-data: nothing is sealed", dataset / "manifest.json")
    hidden = manifest.sealed.unseal(dataset / "manifest.json")
    for name, digest in hidden.get("truth_files", {}).items():
        path = dataset / name
        if not path.is_file() or sha256sum(path) != digest:
            raise DataError("sealed truth file missing or modified", path)
    return manifest, hidden


def sealed_truth(dataset: Path) -> dict[str, np.ndarray]:
    """The pseudo-data's hidden ``probe_category`` per shard file name (closure only)."""
    _, hidden = read_sealed(dataset)
    return {
        Path(name).stem: pq.read_table(dataset / name)["probe_category"].to_numpy()
        for name in hidden["truth_files"]
    }
