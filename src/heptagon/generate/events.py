"""`heptagon generate-events`: event-level samples in NanoAOD-style branches.

One entry per generated event (every event Pythia returns is written: no preselection, so
the cross section and the per-event weights stay exact; analysis regions are data-config
selections). Reconstruction, on the candidates of the one detector module
(:mod:`heptagon.generate.detector`):

- **Leptons** (``Muon_*``, ``Electron_*``): tracked electron / muon candidates (the track
  efficiency and pT resolution of the detector) above ``pt_min`` within ``|eta|`` of the
  lepton type, kept with an identification efficiency, and isolated: ``pfRelIso03_all``,
  the scalar pT sum of the other candidates within ``dR < iso_cone`` over the lepton pT,
  must be below ``iso_max``. Isolated leptons are not given to the jet clustering (in CMS
  language: jets are cleaned of the selected leptons).
- **Jets** (``Jet_*``): anti-kT (FastJet) of the remaining candidates, ``R = 0.4``,
  ``pT > 25`` GeV, ``|eta| < 2.5`` (the tracker, so every jet can be b-tagged), sorted by
  pT. ``Jet_hadronFlavour`` (5, 4, 0) by ghost association of weakly-decaying b / c
  hadrons, as in NanoAOD.
- **b tagging** (``Jet_btag``): the track-counting discriminant from displaced tracks:
  the second-highest lifetime-signed transverse impact-parameter significance ``S2`` of
  the jet's tracks with pT > ``track_pt_min`` (sign: the point of closest approach lies
  along the jet), mapped into [0, 1) as ``1 - exp(-max(S2, 0) / scale)``. The standard
  feature ``Jet_isB`` applies the working point (``Jet_btag > 0.5``).
- **Missing transverse momentum** (``MET_pt``, ``MET_phi``): minus the vector pT sum of
  all reconstructed candidates; ``GenMET_*`` is the pT sum of the neutrinos.
- **Pile-up** (``--pileup MU [--mitigation none|chs|puppi]``, ``docs/pileup.md``): the
  overlay, vertex association and PUPPI weights of jet samples
  (:func:`heptagon.generate.pileup.reconstruct`). Leptons must come from the leading
  vertex (``fromPV >= 2``, CMS's lepton dz requirement). Their isolation is written two
  ways: ``pfRelIso03_all`` (every other candidate) and ``puppiRelIso03``, the PUPPI
  isolation: the sum of ``w pT`` of the other candidates with CMS's no-lepton PUPPI
  weights (``puppiNoLep``: the lepton candidates above ``pt_min`` are left out of the
  alpha sums, else a prompt lepton lifts the weights of the pile-up around it), so the
  charged candidates from the leading vertex and the PUPPI-weighted neutrals. ``iso_max``
  applies to ``pfRelIso03_all`` with ``--mitigation none`` and to ``puppiRelIso03`` with
  ``chs`` and ``puppi`` (a second PUPPI pass per batch). The delta-beta correction (half
  the charged pile-up pT in the cone as the neutral one) does not fit this detector,
  whose neutral pile-up pT is about 1.5 times the charged one (untracked hadrons and
  the calorimeter thresholds). Jets are clustered from the mitigated candidates. ``MET_*`` stays the
  particle-flow MET of all candidates; ``PuppiMET_pt, PuppiMET_phi`` is minus the
  vector sum of the PUPPI-weighted candidates, and ``PV_npvs`` the number of vertices.
- **Truth**: ``GenHiggs_pt, GenHiggs_eta, GenHiggs_phi`` (the last Higgs copy; all zero
  in events without one), ``event`` (index in the shard), and one-hot ``label_<l>`` for
  every process of :data:`LABELS` (``label_tth, label_ttbar, label_dy, ...``), so that
  samples generated separately (more Drell-Yan, say) mix in one data config.
- **Weights**: ``xsec_weight_pb`` = the shard's Pythia cross section / its events / the
  class's shard count, so that the sum over all of a class's events is its cross section
  (pb): multiply by a luminosity in pb^-1 for expected yields.

Pythia generates ttbar / ttH at tens of events per second per core (with MPI), Drell-Yan
a few times faster: size samples accordingly. Pythia has no ttW / ttZ process; ttbar
plays the role of the ttH analysis' main background here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heptagon.artifacts.manifest import EventClass, EventManifest, ShardRecord
from heptagon.cpu import retain_freed_memory
from heptagon.generate.detector import Candidates, DetectorConfig, Particles, apply_detector
from heptagon.generate.jets import FLAVOURS, JetSelection, cluster, flavour_label
from heptagon.generate.options import EventOptions, Mitigation
from heptagon.generate.processes import EVENT_PROCESSES, EVENT_SAMPLES, LABELS, EventProcess
from heptagon.generate.run import (
    BATCH_EVENTS,
    COMMON_SETTINGS,
    ECM_GEV,
    make_pythia,
    shower_weights,
    variation_settings,
    versions,
)
from heptagon.generate.shards import (
    branch_names,
    prepare_out,
    run_shards,
    shard_seed,
    write_table,
)
from heptagon.generate.truth import EventRecord, flavour_ghosts
from heptagon.io import sha256sum
from heptagon.physics.arrays import owner_index
from heptagon.physics.pdg import CAT_ELECTRON, CAT_MUON
from heptagon.physics.puppi import FROM_PV_TIGHT, MitigationConfig, puppi_weights

if TYPE_CHECKING:
    from heptagon.generate.pileup import DetectorLibrary

__all__ = [
    "EVENT_PROCESSES",
    "EVENT_SAMPLES",
    "LABELS",
    "BTagConfig",
    "EventOptions",
    "EventProcess",
    "EventSummary",
    "LeptonConfig",
    "PileupSetup",
    "generate_events",
    "jet_branches",
    "missing_pt",
    "reconstruct",
    "run_event_shard",
    "select_candidates",
    "select_leptons",
]

_MB_TO_PB = 1e9
_ELECTRON_MASS = 0.000511
_MUON_MASS = 0.10566
_NEUTRINOS = (12, 14, 16)
_HADRON_FLAVOUR = {"b": 5, "c": 4, "uds": 0, "g": 0}
#: floor of a track's d0 error (mm) in the b-tag significance (hadron level has none)
_D0ERR_FLOOR = 0.01


class LeptonConfig(BaseModel):
    """Reconstructed-lepton selection (GeV, radians)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pt_min: float = 10.0
    electron_eta_max: float = 2.5
    muon_eta_max: float = 2.4
    electron_id_eff: float = Field(0.90, ge=0, le=1)
    muon_id_eff: float = Field(0.96, ge=0, le=1)
    iso_cone: float = Field(0.3, gt=0)
    iso_max: float = Field(0.15, gt=0)


class BTagConfig(BaseModel):
    """Track-counting b tag: ``1 - exp(-max(S2, 0) / scale)`` of the second-highest signed
    d0 significance ``S2`` of tracks above ``track_pt_min`` GeV."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    track_pt_min: float = 1.0
    scale: float = Field(5.0, gt=0)


@dataclass(frozen=True)
class EventShardSpec:
    """One unit of work: ``n_events`` events of process ``cls`` written to ``path``."""

    cls: str
    index: int
    n_shards: int
    n_events: int
    seed: int
    settings: tuple[str, ...]
    jets: JetSelection
    leptons: LeptonConfig
    btag: BTagConfig
    detector: dict[str, Any] | None
    path: str
    format: str
    pileup: float = 0.0
    mitigation: Mitigation = "none"
    library: str | None = None  # the minimum-bias library; None: no pile-up
    weights: tuple[str, ...] = ()  # the weight variations whose columns are written

    @property
    def entries(self) -> int:
        """Entries (events) the shard holds."""
        return self.n_events


@dataclass(frozen=True)
class PileupSetup:
    """The pile-up of an event sample: the detector-level minimum-bias ``library``, the
    mean number of interactions ``mu`` and the ``mitigation`` of jets and isolation."""

    library: DetectorLibrary
    mu: float
    mitigation: Mitigation


def _pt_eta_phi(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / np.maximum(pt, 1e-12)), np.arctan2(py, px)


def select_candidates(c: Candidates, keep: np.ndarray) -> Candidates:
    """The candidates where ``keep`` is true, counts updated."""
    event = owner_index(c.counts)
    fields = {
        f.name: getattr(c, f.name)[keep]
        for f in dataclasses.fields(Candidates)
        if f.name != "counts"
    }
    return Candidates(counts=np.bincount(event[keep], minlength=len(c.counts)), **fields)


def _isolation(
    c: Candidates, lep: np.ndarray, cone: float, weights: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Relative isolations of the candidates ``lep`` (indices), one per entry of
    ``weights``: the sum of weight x pT of the other candidates of the event within
    ``dR < cone``, over the candidate's pT."""
    start = np.cumsum(c.counts) - c.counts
    event = owner_index(c.counts)
    n_other = c.counts[event[lep]]
    owner = owner_index(n_other)
    other = np.repeat(start[event[lep]], n_other) + (
        np.arange(owner.size) - np.repeat(np.cumsum(n_other) - n_other, n_other)
    )
    pt, eta, phi = _pt_eta_phi(c.px, c.py, c.pz)
    dphi = np.mod(phi[other] - phi[lep[owner]] + np.pi, 2 * np.pi) - np.pi
    near = (np.hypot(eta[other] - eta[lep[owner]], dphi) < cone) & (other != lep[owner])
    cone_pt = np.where(near, pt[other], 0.0)
    return {
        k: np.bincount(owner, weights=cone_pt * w[other], minlength=lep.size) / pt[lep]
        for k, w in weights.items()
    }


def _jagged(values: np.ndarray, counts: np.ndarray) -> ak.Array:
    return ak.unflatten(values, counts)


def select_leptons(
    c: Candidates, cfg: LeptonConfig, rng: np.random.Generator, pu: _Pileup | None
) -> tuple[dict[str, ak.Array], np.ndarray]:
    """``Muon_*`` / ``Electron_*`` branches and the indices of the selected candidates
    (module docstring: with pile-up ``pu``, from the leading vertex and isolated with
    the mitigation's isolation)."""
    pt, eta, phi = _pt_eta_phi(c.px, c.py, c.pz)
    weights = {"pfRelIso03_all": np.ones(pt.size)}
    select_by, from_pv = "pfRelIso03_all", None
    if pu is not None:
        from_pv = pu.from_pv
        leptons = np.isin(c.category, (CAT_MUON, CAT_ELECTRON)) & (pt > cfg.pt_min)
        weights["puppiRelIso03"] = puppi_weights(
            c.counts, c.px, c.py, c.pz, c.charge, from_pv, c.dz, pu.n_vertices,
            MitigationConfig(), excluded=leptons,
        )  # fmt: skip
        select_by = "pfRelIso03_all" if pu.mitigation == "none" else "puppiRelIso03"
    event = owner_index(c.counts)
    out: dict[str, ak.Array] = {}
    chosen = []
    for cat, name, eta_max, eff, mass in (
        (CAT_MUON, "Muon", cfg.muon_eta_max, cfg.muon_id_eff, _MUON_MASS),
        (CAT_ELECTRON, "Electron", cfg.electron_eta_max, cfg.electron_id_eff, _ELECTRON_MASS),
    ):
        cand = np.flatnonzero((c.category == cat) & (pt > cfg.pt_min) & (np.abs(eta) < eta_max))
        cand = cand[rng.random(cand.size) < eff]
        if from_pv is not None:
            cand = cand[from_pv[cand] >= FROM_PV_TIGHT]
        iso = _isolation(c, cand, cfg.iso_cone, weights)
        passed = iso[select_by] < cfg.iso_max
        sel = cand[passed]
        order = np.lexsort((-pt[sel], event[sel]))
        sel = sel[order]
        counts = np.bincount(event[sel], minlength=len(c.counts))
        for field, values in (
            ("pt", pt[sel]),
            ("eta", eta[sel]),
            ("phi", phi[sel]),
            ("mass", np.full(sel.size, mass)),
            ("charge", c.charge[sel]),
            *((k, v[passed][order]) for k, v in iso.items()),
        ):
            dtype = np.int32 if field == "charge" else np.float32
            out[f"{name}_{field}"] = _jagged(values.astype(dtype), counts)
        chosen.append(sel)
    return out, np.concatenate(chosen)


def _btag(
    c: Candidates,
    jet_of: np.ndarray,
    member: np.ndarray,
    jpx: np.ndarray,
    jpy: np.ndarray,
    cfg: BTagConfig,
) -> np.ndarray:
    """Track-counting b-tag score of each jet (see the module docstring)."""
    n_jets = jpx.size
    pt = np.hypot(c.px[member], c.py[member])
    track = (c.charge[member] != 0) & (pt > cfg.track_pt_min)
    j, t, pt = jet_of[track], member[track], pt[track]
    ux, uy = c.px[t] / pt, c.py[t] / pt
    along = c.vx[t] * ux + c.vy[t] * uy
    pca_x, pca_y = c.vx[t] - along * ux, c.vy[t] - along * uy
    sign = np.where(pca_x * jpx[j] + pca_y * jpy[j] >= 0, 1.0, -1.0)
    sig = sign * np.abs(c.d0[t]) / np.maximum(c.d0err[t], _D0ERR_FLOOR)
    order = np.lexsort((-sig, j))
    j, sig = j[order], sig[order]
    first = np.searchsorted(j, j)
    second = np.full(n_jets, -np.inf)
    rank1 = (np.arange(j.size) - first) == 1
    second[j[rank1]] = sig[rank1]
    return np.asarray(1.0 - np.exp(-np.maximum(second, 0.0) / cfg.scale))


def jet_branches(
    c: Candidates, record: EventRecord, sel: JetSelection, btag: BTagConfig
) -> dict[str, ak.Array]:
    """``Jet_*`` branches: anti-kT jets in the window, sorted by pT, with flavour and b tag."""
    n_events = len(c.counts)
    ghosts = flavour_ghosts(record)
    jets = cluster(c, sel, ghosts, leading=None)
    jets = jets.select((jets.pt >= sel.pt_min) & (np.abs(jets.eta) < sel.eta_max))
    flavour = np.array([_HADRON_FLAVOUR[f] for f in FLAVOURS])[flavour_label(jets, ghosts)]
    real = jets.members >= 0
    jet_of = owner_index(jets.n_members)
    score = _btag(c, jet_of[real], jets.members[real], jets.px, jets.py, btag)
    mass = np.sqrt(np.maximum(jets.e**2 - jets.px**2 - jets.py**2 - jets.pz**2, 0.0))
    counts = np.bincount(jets.event, minlength=n_events)
    n_const = np.bincount(jet_of[real], minlength=jets.event.size)
    order = np.lexsort((-jets.pt, jets.event))  # by pT within each event
    columns = {
        "pt": (jets.pt, np.float32),
        "eta": (jets.eta, np.float32),
        "phi": (jets.phi, np.float32),
        "mass": (mass, np.float32),
        "btag": (score, np.float32),
        "hadronFlavour": (flavour, np.int32),
        "nConstituents": (n_const, np.int32),
    }
    return {f"Jet_{k}": _jagged(v[order].astype(t), counts) for k, (v, t) in columns.items()}


def missing_pt(c: Candidates, weight: np.ndarray | None = None) -> tuple[Any, Any]:
    """MET (GeV) and its phi per event: minus the vector pT sum of the candidates, each
    times its ``weight`` if given (the PUPPI weights: PUPPI MET)."""
    w = 1.0 if weight is None else weight
    return _met(owner_index(c.counts), c.px * w, c.py * w, len(c.counts))


def _met(event: np.ndarray, px: np.ndarray, py: np.ndarray, n: int) -> tuple[Any, Any]:
    mx = -np.bincount(event, weights=px, minlength=n)
    my = -np.bincount(event, weights=py, minlength=n)
    return np.hypot(mx, my).astype(np.float32), np.arctan2(my, mx).astype(np.float32)


def _higgs(record: EventRecord) -> dict[str, np.ndarray]:
    """The last Higgs copy of each event (zeros without one)."""
    n = len(record.counts)
    is_h = record.pid == 25
    d1 = record.daughter1
    last = is_h & ~((d1 >= 0) & (record.pid[np.maximum(d1, 0)] == 25))
    idx = np.flatnonzero(last)
    event = record.event[idx]
    idx = idx[np.r_[True, event[1:] != event[:-1]]] if idx.size else idx
    out = {k: np.zeros(n, dtype=np.float32) for k in ("pt", "eta", "phi")}
    pt, eta, phi = _pt_eta_phi(record.px[idx], record.py[idx], record.pz[idx])
    for k, v in (("pt", pt), ("eta", eta), ("phi", phi)):
        out[k][record.event[idx]] = v
    return {f"GenHiggs_{k}": v for k, v in out.items()}


@dataclass(frozen=True)
class _Pileup:
    """Per reconstructed candidate: ``fromPV``, PUPPI weight and the jet weight of the
    ``mitigation``; nPV per event."""

    from_pv: np.ndarray
    puppiw: np.ndarray
    weight: np.ndarray
    mitigation: Mitigation
    n_vertices: np.ndarray


def _candidates(
    particles: Particles,
    detector: DetectorConfig | None,
    pileup: PileupSetup | None,
    rng: np.random.Generator,
) -> tuple[Candidates, _Pileup | None]:
    """The reconstructed candidates of the events, and their pile-up columns if any."""
    if pileup is None:
        return apply_detector(particles, detector, rng), None
    from heptagon.generate.pileup import reconstruct as pileup_reconstruct

    assert detector is not None  # EventOptions refuses pile-up without the detector
    pu = pileup_reconstruct(particles, pileup.library, pileup.mu, pileup.mitigation, detector, rng)
    cols = pu.unmitigated_columns
    return pu.unmitigated, _Pileup(
        cols["fromPV"], cols["puppiw"], pu.weight, pileup.mitigation, pu.n_vertices
    )


def reconstruct(
    record: EventRecord,
    detector: DetectorConfig | None,
    jets: JetSelection,
    leptons: LeptonConfig,
    btag: BTagConfig,
    rng: np.random.Generator,
    pileup: PileupSetup | None = None,
) -> dict[str, Any]:
    """The NanoAOD-style branches of a batch of events (see the module docstring)."""
    from heptagon.generate.pileup import weighted

    particles = record.final_state()
    cands, pu = _candidates(particles, detector, pileup, rng)
    n = len(record.counts)
    lepton_branches, chosen = select_leptons(cands, leptons, rng, pu)
    jet_weight = np.ones(cands.px.size) if pu is None else pu.weight.copy()
    jet_weight[chosen] = 0.0
    jet_inputs = weighted(cands, jet_weight)
    table: dict[str, Any] = {**jet_branches(jet_inputs, record, jets, btag), **lepton_branches}
    table["MET_pt"], table["MET_phi"] = missing_pt(cands)
    if pu is not None:
        table["PuppiMET_pt"], table["PuppiMET_phi"] = missing_pt(cands, pu.puppiw)
        table["PV_npvs"] = pu.n_vertices.astype(np.int32)
    nu = np.isin(np.abs(particles.pid), _NEUTRINOS)
    # GenMET: the neutrinos' pT sum (minus the sum of the rest, at generator level)
    gx, gy = _met(particles.event[nu], -particles.px[nu], -particles.py[nu], n)
    table["GenMET_pt"], table["GenMET_phi"] = gx, gy
    table.update(_higgs(record))
    return table


def run_event_shard(
    spec: EventShardSpec, report: Callable[[int], None] | None = None
) -> ShardRecord:
    """Generate, reconstruct and write one shard; return its record for the manifest."""
    pythia = make_pythia(spec.settings)
    rng = np.random.default_rng(spec.seed)
    det = None if spec.detector is None else DetectorConfig(**spec.detector)
    pileup = None
    if spec.library is not None:
        from heptagon.generate.pileup import detector_library, read_library

        assert det is not None  # EventOptions refuses pile-up without the detector
        retain_freed_memory()  # as the jet shards with pile-up (generate.run.run_shard)
        library = detector_library(read_library(Path(spec.library)), det, rng)
        pileup = PileupSetup(library, spec.pileup, spec.mitigation)
    parts: list[dict[str, Any]] = []
    made = 0
    while made < spec.n_events:
        batch = pythia.nextBatch(min(BATCH_EVENTS, spec.n_events - made))
        record = EventRecord.from_batch(batch.prt)
        parts.append(reconstruct(record, det, spec.jets, spec.leptons, spec.btag, rng, pileup))
        parts[-1].update(shower_weights(pythia, batch, spec.weights, np.arange(len(record.counts))))
        made += len(record.counts)
        if report is not None:
            report(len(record.counts))
    table = {k: ak.concatenate([p[k] for p in parts])[: spec.n_events] for k in parts[0]}
    n = spec.n_events
    info = pythia.infoPython()
    sigma = info.sigmaGen() * _MB_TO_PB
    table["event"] = np.arange(n, dtype=np.int64)
    table["xsec_weight_pb"] = np.full(n, sigma / n / spec.n_shards)
    for label in LABELS:
        table[f"label_{label}"] = np.full(n, label == spec.cls)
    path = Path(spec.path)
    write_table(table, path, spec.format)
    return ShardRecord(
        file=f"shards/{path.name}",
        cls=spec.cls,
        entries=n,
        sha256=sha256sum(path),
        seed=spec.seed,
        sigma_gen_pb=sigma,
        sigma_err_pb=info.sigmaErr() * _MB_TO_PB,
        n_tried=int(info.nTried()),
        n_accepted=int(info.nAccepted()),
    )


def _settings(
    process: EventProcess, mpi: bool, seed: int, extra: tuple[str, ...] = ()
) -> tuple[str, ...]:
    return (
        *COMMON_SETTINGS,
        *extra,
        f"PartonLevel:MPI = {'on' if mpi else 'off'}",
        *process.settings,
        f"Random:seed = {seed}",
    )


def _pileup_settings(opts: EventOptions) -> dict[str, Any] | None:
    """The pile-up section of the settings (that of jet samples without rho)."""
    if opts.pileup_mu is None:
        return None
    from heptagon.generate.pileup import pileup_settings

    settings = pileup_settings(
        opts.pileup_mu, opts.mitigation, opts.pileup_library, shard_seed(opts.seed, "minbias", 0)
    )
    return {k: v for k, v in settings.items() if k != "rho"}


def _plan(opts: EventOptions) -> tuple[list[EventShardSpec], dict[str, Any]]:
    pileup = _pileup_settings(opts)
    sel = JetSelection(radius=opts.radius, pt_min=opts.pt_min, pt_max=np.inf, eta_max=opts.eta_max)
    det = None if opts.detector == "none" else DetectorConfig(**opts.detector_knobs)
    leptons, btag = LeptonConfig(), BTagConfig()
    ext = "parquet" if opts.format == "parquet" else "root"
    n_shards = -(-opts.events // opts.shard_size)
    specs = []
    for cls in opts.classes:
        for i in range(n_shards):
            seed = shard_seed(opts.seed, cls, i)
            specs.append(
                EventShardSpec(
                    cls=cls,
                    index=i,
                    n_shards=n_shards,
                    n_events=min(opts.shard_size, opts.events - i * opts.shard_size),
                    seed=seed,
                    settings=_settings(
                        EVENT_PROCESSES[cls], opts.mpi, seed, opts.generator_settings()
                    ),
                    jets=sel,
                    leptons=leptons,
                    btag=btag,
                    detector=None if det is None else det.settings(),
                    path=str(opts.out / "shards" / f"{cls}_{i:04d}.{ext}"),
                    format=opts.format,
                    pileup=opts.pileup_mu or 0.0,
                    mitigation=opts.mitigation,
                    library=None if pileup is None else str(opts.out / pileup["library"]["file"]),
                    weights=opts.weight_names,
                )
            )
    settings = {
        "sample": opts.sample,
        "events_per_class": opts.events,
        "seed": opts.seed,
        "format": opts.format,
        "shard_size": opts.shard_size,
        "jets": {"algorithm": "anti-kt", **dataclasses.asdict(sel) | {"pt_max": None}},
        "leptons": leptons.model_dump(),
        "btag": btag.model_dump(),
        "mpi": opts.mpi,
        "detector": None if det is None else det.settings(),
    }
    if pileup is not None:
        settings["pileup"] = pileup
    settings |= variation_settings(opts)
    return specs, settings


def _class_summary(records: list[ShardRecord], classes: tuple[str, ...]) -> dict[str, EventClass]:
    out: dict[str, EventClass] = {}
    for cls in classes:
        rs = [r for r in records if r.cls == cls]
        sig = np.array([r.sigma_gen_pb for r in rs], dtype=float)
        err = np.array([r.sigma_err_pb for r in rs], dtype=float)
        process = EVENT_PROCESSES[cls]
        out[cls] = EventClass(
            label=f"label_{cls}",
            description=process.description,
            pythia_settings=list(process.settings),
            events=sum(r.entries for r in rs),
            n_tried=sum(r.n_tried or 0 for r in rs),
            n_accepted=sum(r.n_accepted or 0 for r in rs),
            # the mean of the shards' estimates, as the per-event weights use
            sigma_gen_pb=float(sig.mean()),
            sigma_err_pb=float(np.sqrt((err**2).sum()) / err.size),
        )
    return out


@dataclass(frozen=True)
class EventSummary:
    """What a generate-events run made."""

    out: Path
    manifest: EventManifest
    wall_s: float
    events_per_s: float
    skipped_shards: int


def generate_events(opts: EventOptions, *, show_progress: bool = True) -> EventSummary:
    """Generate (or finish generating) the event sample of ``opts`` in ``opts.out``."""
    specs, settings = _plan(opts)
    prepare_out(opts.out, settings)
    if opts.pileup is not None:
        from heptagon.generate.pileup import minbias_library, with_library_checksum

        lib = settings["pileup"]["library"]
        minbias_library(opts.out / lib["file"], lib["events"], lib["seed"])
        settings["pileup"] = with_library_checksum(opts.out, settings["pileup"])
    done = run_shards(
        specs,
        run_event_shard,
        jobs=opts.jobs,
        scheduler=opts.scheduler,
        title=f"generate-events {opts.sample}",
        unit="events",
        show_progress=show_progress,
    )
    manifest = EventManifest.model_validate(
        {
            "kind": "events",
            "versions": versions(),
            "generator": {
                "beams_ecm_gev": ECM_GEV,
                "common_settings": list(COMMON_SETTINGS),
                "mpi": opts.mpi,
                "batch_events": BATCH_EVENTS,
            },
            **settings,
            "weights": "xsec_weight_pb: sum over a class = its cross section in pb",
            "classes": _class_summary(done.records, opts.classes),
            "files": [r.listing() for r in done.records],
            "branches": branch_names(opts.out / done.records[0].file, opts.format),
        }
    )
    manifest.write(opts.out / "manifest.json")
    return EventSummary(
        out=opts.out,
        manifest=manifest,
        wall_s=done.wall_s,
        events_per_s=done.made / done.wall_s if done.wall_s > 0 else 0.0,
        skipped_shards=done.skipped,
    )
