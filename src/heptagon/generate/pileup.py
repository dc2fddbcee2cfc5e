"""Pile-up: a minimum-bias library, its overlay on hard events, and the reconstruction of
overlaid events with CMS's mitigation (shared by ``heptagon generate`` and
``heptagon mlpf generate``; see ``docs/pileup.md``).

- **Library** (:func:`minbias_library`): ``n`` Pythia non-diffractive events (MPI on),
  generated once per sample from a seed derived from the sample seed, written to
  ``OUT/pileup/minbias.parquet`` before the shards and read by every shard.
- **Overlay** (:func:`overlay_pileup`): ``Poisson(mu)`` library events, drawn with the
  shard's generator (same seed, same overlay), are added to each hard event. The hard
  scatter defines ``z = 0``: it and every pile-up vertex are independent draws from the
  luminous region (a Gaussian of ``BEAMSPOT_SIGMA_Z_MM`` along z), so each pile-up
  vertex sits at ``N(0, sqrt(2) sigma_z)`` from it. Its particles keep their production
  points, moved by that z: tracks carry their vertex's z into ``dz``, and the detector's
  longitudinal resolution decides what can be told apart. The transverse beam spot
  (~10 um) and the time spread are not simulated (no timing detector).
- **Detector level** (:func:`detector_library`): a particle's detector response does not
  depend on the hard event except where calorimeter deposits share a tower. The library
  is simulated once per shard (its tracks, and its calorimeter deposits summed per cell,
  :meth:`~heptagon.generate.detector.Deposits.cell_sums`), and the overlay is made at
  that level: the drawn events' tracks (``dz`` and ``vz`` moved by their vertex's z) are
  added to the hard event's, and their cell sums to its deposits before the towers are
  formed, smeared and thresholded. Each library event thus keeps one detector
  realisation within a shard, as it keeps one particle-level realisation in the sample.
- **Reconstruction** (:func:`reconstruct`): the detector response of the overlaid event
  with truth (``vertex``), the vertex association (``fromPV``) and PUPPI weights of every
  candidate (:mod:`heptagon.physics.puppi`), and the candidates the jets are made of:
  all (``none``), CHS (charged candidates associated to a pile-up vertex removed) or
  PUPPI (four-vectors scaled by the weight, weight-0 candidates dropped).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from heptagon.errors import DataError
from heptagon.generate.detector import (
    BinnedDeposits,
    Candidates,
    Deposits,
    DetectorConfig,
    Particles,
    apply_detector,
    detector_response,
    merge_candidates,
    tower_layout,
    towers,
)
from heptagon.generate.jets import (
    GHOST_AREA,
    GHOST_RAP_MAX,
    RHO_GRID_SPACING,
    RHO_RAP_MAX,
    JetSelection,
    cluster,
)
from heptagon.generate.options import Mitigation
from heptagon.generate.processes import EVENT_PROCESSES
from heptagon.generate.run import BATCH_EVENTS, COMMON_SETTINGS, make_pythia
from heptagon.generate.shards import write_table
from heptagon.generate.truth import EventRecord
from heptagon.io import make_dir, sha256sum
from heptagon.physics.arrays import owner_index
from heptagon.physics.kinematics import delta_r
from heptagon.physics.puppi import (
    MitigationConfig,
    chs_mask,
    puppi_weights,
    vertex_association,
)

__all__ = [
    "BEAMSPOT_SIGMA_Z_MM",
    "FORWARD_REFERENCE_MAX",
    "LIBRARY_FILE",
    "DetectorLibrary",
    "JetFocus",
    "Mitigation",
    "Overlay",
    "PileupCandidates",
    "concat_particles",
    "detector_library",
    "focus_settings",
    "jet_focus",
    "minbias_library",
    "mitigation_weight",
    "overlay_pileup",
    "pileup_settings",
    "preselection_floor",
    "process_settings",
    "pythia_final_state",
    "read_library",
    "reconstruct",
    "weighted",
    "with_library_checksum",
]

#: r.m.s. length of the luminous region along z (mm): CMS Run 2, about 3.5 cm
BEAMSPOT_SIGMA_Z_MM = 35.0
#: where a jet sample keeps its minimum-bias library, in its dataset dir
LIBRARY_FILE = "pileup/minbias.parquet"
#: jet samples (:func:`jet_focus`, docs/pileup.md "Cost"): the detector's upward spread of
#: a jet's pT over its hard-scatter particle-level pT, as a fraction of ``pt_min``
PT_MARGIN_DETECTOR = 0.2
#: pile-up pT per unit area per interaction (GeV; rho / mu measured, docs/pileup.md)
RHO_PER_INTERACTION = 1.2
#: headroom on the expected pile-up pT in a jet, for its fluctuations
PU_OFFSET_HEADROOM = 1.5
#: a selected jet's |eta| above the hard-scatter jet's, and its axis away from it (dR)
ETA_MARGIN = 0.2
REACH_MARGIN = 0.2
#: forward candidates per event that give the forward PUPPI median and RMS
FORWARD_REFERENCE_MAX = 300
_FIELDS = ("px", "py", "pz", "e", "pid", "vx", "vy", "vz")


@dataclass(frozen=True)
class Overlay:
    """Hard events with pile-up: the merged particles, each one's ``vertex`` (0 the hard
    scatter, k >= 1 the k-th pile-up vertex of its event) and the vertices' z (mm, flat,
    ``n_vertices`` per event, the hard scatter's 0 first)."""

    particles: Particles
    vertex: np.ndarray
    vertex_z: np.ndarray
    n_vertices: np.ndarray

    @property
    def pileup(self) -> np.ndarray:
        """Mask of the pile-up particles."""
        return self.vertex > 0


@dataclass(frozen=True)
class _Draw:
    """The pile-up of a batch of ``n`` events: ``n_pu`` interactions per event, the library
    event ``picks`` and z offsets ``dz`` (mm) of each, in event order."""

    n_pu: np.ndarray
    picks: np.ndarray
    dz: np.ndarray

    @property
    def event(self) -> np.ndarray:
        """The hard event of each interaction."""
        return owner_index(self.n_pu)

    def vertex_z(self) -> np.ndarray:
        """The vertices' z per event (flat, ``n_pu + 1`` each): the hard scatter's 0, then
        its pile-up vertices in draw order."""
        out = np.zeros(self.n_pu.size + self.dz.size)
        first = np.cumsum(self.n_pu + 1) - (self.n_pu + 1)
        mask = np.ones(out.size, dtype=bool)
        mask[first] = False
        out[mask] = self.dz
        return out


def _draw(
    n: int, n_library: int, mean: float, sigma_z_mm: float, rng: np.random.Generator
) -> _Draw:
    n_pu = rng.poisson(mean, n) if mean > 0 else np.zeros(n, dtype=np.int64)
    picks = rng.integers(0, n_library, int(n_pu.sum()))
    dz = rng.normal(0.0, np.sqrt(2.0) * sigma_z_mm, picks.size)
    return _Draw(n_pu, picks, dz)


def _draw_per_event(
    seeds: np.ndarray, active: np.ndarray, n_library: int, mean: float, sigma_z_mm: float
) -> _Draw:
    """The pile-up of a batch drawn event by event, each from its own generator
    (``default_rng(seeds[i])``): an event's pile-up does not depend on the other events
    of its batch; ``active`` events only (the others get none)."""
    n_pu, picks, dz = [], [], []
    for seed, on in zip(seeds.tolist(), active.tolist(), strict=True):
        draw = _draw(1 if on else 0, n_library, mean, sigma_z_mm, np.random.default_rng(seed))
        n_pu.append(draw.n_pu if on else np.zeros(1, dtype=np.int64))
        picks.append(draw.picks)
        dz.append(draw.dz)
    return _Draw(np.concatenate(n_pu), np.concatenate(picks), np.concatenate(dz))


def _gather(counts: np.ndarray, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the items of library events ``picks`` (flat, ``counts`` per library
    event), concatenated in pick order, and the number taken from each pick."""
    start = np.cumsum(counts) - counts
    sizes = counts[picks]
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(start[picks], sizes) + np.arange(int(sizes.sum())) - offsets, sizes


def overlay_pileup(
    hard: Particles, library: Particles, mean: float, sigma_z_mm: float, rng: np.random.Generator
) -> Overlay:
    """Add ``Poisson(mean)`` random library events to each event of ``hard``, each moved
    along z by ``N(0, sqrt(2) sigma_z_mm)`` (module docstring)."""
    n = len(hard.counts)
    draw = _draw(n, len(library.counts), mean, sigma_z_mm, rng)
    take, sizes = _gather(library.counts, draw.picks)
    pu_event = np.repeat(draw.event, sizes)
    # the rank of each pile-up interaction within its event, from 1
    rank = np.arange(draw.picks.size) - np.repeat(np.cumsum(draw.n_pu) - draw.n_pu, draw.n_pu) + 1
    order = np.argsort(np.concatenate([hard.event, pu_event]), kind="stable")
    shift = np.repeat(draw.dz, sizes)
    fields: dict[str, np.ndarray] = {}
    for k in _FIELDS:
        extra = getattr(library, k)[take] + (shift if k == "vz" else 0)
        fields[k] = np.concatenate([getattr(hard, k), extra])[order]
    vertex = np.concatenate([np.zeros(hard.pid.size, np.int64), np.repeat(rank, sizes)])[order]
    counts = hard.counts + np.bincount(pu_event, minlength=n)
    return Overlay(Particles(counts=counts, **fields), vertex, draw.vertex_z(), draw.n_pu + 1)


@dataclass(frozen=True)
class DetectorLibrary:
    """A minimum-bias library at detector level (module docstring): its ``tracks``, its
    calorimeter deposits summed per cell, ``cells`` (``event`` is the library event), and
    the number of each of those cells in the detector's
    :func:`~heptagon.generate.detector.tower_layout`, ``cell_number``."""

    tracks: Candidates
    cells: Deposits
    cell_number: np.ndarray

    @property
    def n_events(self) -> int:
        """Library events."""
        return len(self.tracks.counts)


def detector_library(
    library: Particles, detector: DetectorConfig, rng: np.random.Generator
) -> DetectorLibrary:
    """The detector response of every library event (all its particles pile-up)."""
    tracks, deposits = detector_response(
        library, detector, rng, np.ones(library.pid.size, dtype=bool)
    )
    cells = deposits.cell_sums()
    number = tower_layout(detector).index(cells.layer, cells.size, cells.eta, cells.phi)
    return DetectorLibrary(tracks, cells, number)


def _overlay_candidates(
    hard: Particles,
    library: DetectorLibrary,
    draw: _Draw,
    det: DetectorConfig,
    rng: np.random.Generator,
) -> Candidates:
    """The reconstructed candidates of the hard events with the drawn pile-up: each event's
    hard tracks, then its pile-up tracks in draw order, then its towers."""
    n = len(hard.counts)
    hard_tracks, hard_deposits = detector_response(hard, det, rng)
    lt = library.tracks
    take, sizes = _gather(lt.counts, draw.picks)
    shift = np.repeat(draw.dz, sizes)
    fields = {
        f.name: getattr(lt, f.name)[take]
        for f in dataclasses.fields(Candidates)
        if f.name != "counts"
    }
    fields["dz"] = fields["dz"] + shift
    fields["vz"] = fields["vz"] + shift
    pu_tracks = Candidates(counts=np.bincount(np.repeat(draw.event, sizes), minlength=n), **fields)
    cells, cell_sizes = _gather(
        np.bincount(library.cells.event, minlength=library.n_events), draw.picks
    )
    e = library.cells.e[cells]
    binned = BinnedDeposits(np.repeat(draw.event, cell_sizes), library.cell_number[cells], e, e)
    calo = towers(det, hard_deposits, n, rng, binned)
    return merge_candidates(hard_tracks, pu_tracks, calo)


def pythia_final_state(settings: tuple[str, ...], n_events: int) -> list[Particles]:
    """The final-state particles of ``n_events`` Pythia events (one entry per batch)."""
    pythia = make_pythia(settings)
    out, made = [], 0
    while made < n_events:
        batch = pythia.nextBatch(min(BATCH_EVENTS, n_events - made))
        record = EventRecord.from_batch(batch.prt)
        out.append(record.final_state())
        made += len(record.counts)
    return out


def _events(p: Particles, keep: np.ndarray) -> Particles:
    """``p`` with the particles of the events not in ``keep`` removed (events kept)."""
    mask = np.repeat(keep, p.counts)
    return Particles(
        counts=np.where(keep, p.counts, 0), **{k: getattr(p, k)[mask] for k in _FIELDS}
    )


def concat_particles(parts: list[Particles]) -> Particles:
    """One batch of the events of several."""
    return Particles(
        counts=np.concatenate([q.counts for q in parts]),
        **{k: np.concatenate([getattr(q, k) for q in parts]) for k in _FIELDS},
    )


def process_settings(process: str, seed: int) -> tuple[str, ...]:
    """The Pythia configuration of an event-level ``process`` (a key of
    :data:`~heptagon.generate.processes.EVENT_PROCESSES`) with MPI on."""
    return (
        *COMMON_SETTINGS,
        "PartonLevel:MPI = on",
        *EVENT_PROCESSES[process].settings,
        f"Random:seed = {seed}",
    )


def minbias_library(path: Path, n_events: int, seed: int) -> None:
    """Write a minimum-bias library of ``n_events`` Pythia events to ``path`` (Parquet)
    unless it exists (it is generated once per sample and shared by its shards)."""
    if path.exists():
        return
    make_dir(path.parent)
    lib = concat_particles(pythia_final_state(process_settings("minbias", seed), n_events))
    write_table({k: ak.unflatten(getattr(lib, k), lib.counts) for k in _FIELDS}, path, "parquet")


def read_library(path: Path) -> Particles:
    """The particles of a library written by :func:`minbias_library`; a
    :class:`DataError` naming the file if it cannot be read or lacks a column."""
    try:
        arr = ak.from_parquet(path)
        counts = ak.to_numpy(ak.num(arr[_FIELDS[0]])).astype(np.int64)
        cols = {k: ak.to_numpy(ak.flatten(arr[k])) for k in _FIELDS}
    except Exception as err:  # pyarrow and awkward raise many kinds
        raise DataError(f"unreadable minimum-bias library ({err})", file=path) from None
    if counts.size == 0:
        raise DataError("empty minimum-bias library", file=path)
    return Particles(counts=counts, **cols)


@dataclass(frozen=True)
class JetFocus:
    """What a jet sample needs reconstructed with pile-up (:func:`jet_focus`): the
    ``event``, ``eta`` and ``phi`` of every hard-scatter jet that can give a selected
    jet, the ``reach`` (in dR) of such a jet around it, and one generator seed per event
    of the batch for its pile-up (``seeds[i]`` for ``numpy.random.default_rng``)."""

    event: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    reach: float
    seeds: np.ndarray

    def active(self, n_events: int) -> np.ndarray:
        """Mask of the events with a jet that can be selected."""
        return np.bincount(self.event, minlength=n_events) > 0

    def in_reach(self, c: Candidates, among: np.ndarray) -> np.ndarray:
        """Mask of the candidates ``among`` (a mask) within ``reach`` of one of their
        event's jets."""
        n_ev = len(c.counts)
        n_axes = np.bincount(self.event, minlength=n_ev)
        mine = np.flatnonzero(among)
        event = owner_index(c.counts)[mine]
        px, py, pz = c.px[mine], c.py[mine], c.pz[mine]
        eta = np.arcsinh(pz / np.maximum(np.hypot(px, py), 1e-12))
        # first the |eta| band of the event's jets, then dR to each of them
        lo, hi = np.full(n_ev, np.inf), np.full(n_ev, -np.inf)
        np.minimum.at(lo, self.event, self.eta - self.reach)
        np.maximum.at(hi, self.event, self.eta + self.reach)
        band = np.flatnonzero((eta > lo[event]) & (eta < hi[event]))
        cand = np.repeat(band, n_axes[event[band]])
        order = np.argsort(self.event, kind="stable")
        axis = order[_gather(n_axes, event[band])[0]]
        phi = np.arctan2(py[cand], px[cand])
        dr = delta_r(eta[cand], phi, self.eta[axis], self.phi[axis])
        out = np.zeros(among.size, dtype=bool)
        out[mine[cand[dr < self.reach]]] = True
        return out


def preselection_floor(sel: JetSelection, mu: float, mitigation: Mitigation) -> float:
    """The lowest hard-scatter jet pT (GeV) that can give a jet of ``sel`` after the
    detector and the pile-up (docs/pileup.md, "Cost"): ``pt_min`` less the detector's
    upward spread (:data:`PT_MARGIN_DETECTOR` of it) and, without PUPPI, the pile-up pT in
    the jet, ``PU_OFFSET_HEADROOM * mu * RHO_PER_INTERACTION * pi R^2``."""
    offset = 0.0
    if mitigation != "puppi":
        offset = PU_OFFSET_HEADROOM * mu * RHO_PER_INTERACTION * np.pi * sel.radius**2
    return max(0.0, sel.pt_min * (1.0 - PT_MARGIN_DETECTOR) - offset)


def focus_settings() -> dict[str, float | int]:
    """The preselection and PUPPI-reach constants of jet samples (:func:`jet_focus`), for
    their settings and manifest."""
    return {
        "pt_margin_detector": PT_MARGIN_DETECTOR,
        "rho_per_interaction": RHO_PER_INTERACTION,
        "pu_offset_headroom": PU_OFFSET_HEADROOM,
        "eta_margin": ETA_MARGIN,
        "reach_margin": REACH_MARGIN,
        "forward_reference_max": FORWARD_REFERENCE_MAX,
    }


def jet_focus(
    hard: Particles,
    sel: JetSelection,
    mu: float,
    mitigation: Mitigation,
    seeds: np.ndarray,
    rng: np.random.Generator,
) -> JetFocus:
    """The hard-scatter jets of ``hard`` that can give a jet of ``sel`` with pile-up:
    anti-kT jets of its visible particles (no detector) above :func:`preselection_floor`
    within ``|eta| < eta_max + ETA_MARGIN``, each reaching ``R + REACH_MARGIN``
    (docs/pileup.md, "Cost"); ``rng`` is not drawn from (particle level)."""
    floor = preselection_floor(sel, mu, mitigation)
    jets = cluster(
        apply_detector(hard, None, rng),
        JetSelection(sel.radius, max(floor, 1.0), np.inf, np.inf, sel.use_rapidity),
        None,
        leading=None,
    )
    eta = jets.rapidity if sel.use_rapidity else jets.eta
    keep = np.abs(eta) < sel.eta_max + ETA_MARGIN
    return JetFocus(
        jets.event[keep], jets.eta[keep], jets.phi[keep], sel.radius + REACH_MARGIN, seeds
    )


@dataclass(frozen=True)
class PileupCandidates:
    """Reconstructed events with pile-up: the candidates the jets are made of (after
    mitigation) with their columns for the ``part_*`` branches (``vertex``, ``fromPV``,
    ``puppiw``); all the reconstructed ``unmitigated`` ones (the event ``rho`` is theirs:
    :func:`heptagon.generate.jets.event_rho`) with the same ``unmitigated_columns`` and
    the ``weight`` the mitigation gives each (:func:`mitigation_weight`); the number of
    vertices (nPV) of each event."""

    candidates: Candidates
    columns: dict[str, np.ndarray]
    unmitigated: Candidates
    unmitigated_columns: dict[str, np.ndarray]
    weight: np.ndarray
    n_vertices: np.ndarray


def mitigation_weight(
    mitigation: Mitigation, charge: np.ndarray, from_pv: np.ndarray, puppiw: np.ndarray
) -> np.ndarray:
    """The weight of each candidate under ``mitigation``: 1 (``none``), 1 or 0 (``chs``:
    :func:`~heptagon.physics.puppi.chs_mask`), its PUPPI weight (``puppi``). A mitigated
    candidate set is the weight-0 candidates dropped and the others' four-vectors scaled."""
    if mitigation == "chs":
        return chs_mask(charge, from_pv).astype(np.float64)
    if mitigation == "puppi":
        return puppiw
    return np.ones(charge.size)


def weighted(c: Candidates, weight: np.ndarray) -> Candidates:
    """The candidates of non-zero ``weight``, four-momenta times it."""
    keep = weight > 0
    event = owner_index(c.counts)
    fields = {
        f.name: getattr(c, f.name)[keep]
        for f in dataclasses.fields(Candidates)
        if f.name != "counts"
    }
    for k in ("px", "py", "pz", "e"):
        fields[k] = fields[k] * weight[keep]
    return Candidates(counts=np.bincount(event[keep], minlength=len(c.counts)), **fields)


def reconstruct(
    hard: Particles,
    library: DetectorLibrary,
    mu: float,
    mitigation: Mitigation,
    detector: DetectorConfig,
    rng: np.random.Generator,
    focus: JetFocus | None = None,
) -> PileupCandidates:
    """Overlay pile-up on ``hard`` at detector level, reconstruct, associate, weight and
    mitigate (module docstring). Results depend only on the inputs and the state of
    ``rng``.

    ``focus`` (jet samples, :func:`jet_focus`): only the events with a jet that can be
    selected are reconstructed (the others come out empty), each with pile-up from its
    own seed; with ``puppi`` (whose jets are made of the weighted candidates) PUPPI
    weights the neutral candidates within reach of those jets only, with the forward
    median from at most :data:`FORWARD_REFERENCE_MAX` candidates per event; ``none`` and
    ``chs`` jets can hold any candidate, so every ``part_puppiw`` is the full one there
    (docs/pileup.md, "Cost")."""
    cfg = MitigationConfig()
    n = len(hard.counts)
    if focus is None:
        draw = _draw(n, library.n_events, mu, BEAMSPOT_SIGMA_Z_MM, rng)
    else:
        active = focus.active(n)
        hard = _events(hard, active)
        draw = _draw_per_event(focus.seeds, active, library.n_events, mu, BEAMSPOT_SIGMA_Z_MM)
    c = _overlay_candidates(hard, library, draw, detector, rng)
    n_vertices = draw.n_pu + 1
    # PUPPI's targets: only its neutral weights are computed
    targets = (
        focus.in_reach(c, c.charge == 0) if focus is not None and mitigation == "puppi" else None
    )
    from_pv = vertex_association(
        c.counts, c.charge, c.dz, c.dzerr, n_vertices, draw.vertex_z(), cfg.assoc_n_sigma
    )
    puppiw = puppi_weights(
        c.counts,
        c.px,
        c.py,
        c.pz,
        c.charge,
        from_pv,
        c.dz,
        n_vertices,
        cfg,
        targets=targets,
        forward_reference_max=None if targets is None else FORWARD_REFERENCE_MAX,
    )
    weight = mitigation_weight(mitigation, c.charge, from_pv, puppiw)
    columns = {"vertex": c.vertex, "fromPV": from_pv, "puppiw": puppiw}
    return PileupCandidates(
        candidates=weighted(c, weight),
        columns={k: v[weight > 0] for k, v in columns.items()},
        unmitigated=c,
        unmitigated_columns=columns,
        weight=weight,
        n_vertices=n_vertices,
    )


def with_library_checksum(out: Path, pileup: dict[str, Any]) -> dict[str, Any]:
    """The pile-up settings of a sample (:func:`pileup_settings`) with its minimum-bias
    library's sha256, for the manifest."""
    lib = pileup["library"]
    return pileup | {"library": lib | {"sha256": sha256sum(out / lib["file"])}}


def pileup_settings(
    mu: float, mitigation: Mitigation, library_events: int, library_seed: int
) -> dict[str, Any]:
    """Everything that defines the pile-up of a jet sample, for its settings and manifest."""
    return {
        "mu": mu,
        "mitigation": mitigation,
        "beamspot_sigma_z_mm": BEAMSPOT_SIGMA_Z_MM,
        "library": {
            "file": LIBRARY_FILE,
            "events": library_events,
            "seed": library_seed,
            "pythia_settings": list(process_settings("minbias", library_seed)),
        },
        "mitigation_config": MitigationConfig().model_dump(),
        "rho": {
            "algorithm": "grid_median",
            "grid_spacing": RHO_GRID_SPACING,
            "rap_max": RHO_RAP_MAX,
        },
        "jet_area": {
            "ghost_area": GHOST_AREA,
            "ghost_rap_max": GHOST_RAP_MAX,
            "area": "active_area_explicit_ghosts",
        },
    }
