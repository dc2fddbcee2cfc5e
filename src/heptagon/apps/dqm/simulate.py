"""Runs and lumisections (LS) of a CMS-like detector, filled from a generated jet sample.

The event source is a QCD jet sample made once by the generate stage (anti-kT R = 0.4,
pT 30-1000 GeV, abs(eta) < 2.5, MPI on; Pythia 8 + the parametric detector) and cached.
Each LS draws a Poisson number of events (mean: its integrated luminosity, in units of
expected events) from the sample, without replacement within the LS (with replacement
only when the LS needs more events than the sample has); each drawn event is rotated by a random
azimuth and reflected in eta at random (the physics is symmetric under both), so a few
thousand jets give a year of statistically distinct LS. Runs have their own peak
luminosity, decaying exponentially along the run, and a slow calorimeter response drift
over the year (the response of neutral deposits is ``1 + drift * sin(2 pi run / runs)``).

Faults act on the constituents (the reconstructed particles) before the jets are rebuilt
and the histograms filled; each has a size (see :class:`Fault`) and starts at an LS of the
run. Jets are rebuilt from what is left of their constituents (four-momentum sum) and kept
above ``jet_pt_min``. Labels (fault, size, good/bad) are kept per run and per LS.

A changed detector (``SourceOptions.detector_set``, ``heptagon dqm simulate
--detector-set FIELD=VALUE``): the source is generated with ``heptagon generate
--detector-set``'s parameters, recorded in its manifest.

Pile-up (``SourceOptions.pileup``, ``heptagon dqm simulate --pileup MU``): the source is
generated with ``heptagon generate``'s overlay (its minimum-bias library, beam spot,
vertex association and mitigation: :mod:`heptagon.generate.pileup`, docs/pileup.md), so
every LS sees the jets of collisions at that mean pile-up: pile-up constituents in the
hard jets, pile-up jets above ``jet_pt_min``, more tracks and calorimeter deposits. The
mean pile-up is that of the source, the same in every LS (it does not follow the
luminosity decay along a run).
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import awkward as ak
import numpy as np
import vector
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from heptagon.apps.dqm.observables import HISTOGRAMS, book, histogram_shapes
from heptagon.artifacts.dqm import DqmRunList
from heptagon.artifacts.manifest import load_manifest
from heptagon.config import validate_in_file
from heptagon.errors import ConfigError, DataError
from heptagon.generate.options import DetectorSetOptions, Mitigation
from heptagon.generate.run import GenerateOptions, generate
from heptagon.io import atomic_path, make_dir
from heptagon.physics.arrays import owner_index
from heptagon.physics.pdg import (
    CAT_CHARGED_HADRON,
    CAT_ELECTRON,
    CAT_MUON,
    CAT_NEUTRAL_HADRON,
    CAT_PHOTON,
    TYPE_FLAGS,
)

__all__ = [
    "FAULT_KINDS",
    "DQMData",
    "Fault",
    "FaultKind",
    "JetSource",
    "RunPlan",
    "SimulateConfig",
    "SourceOptions",
    "load_data",
    "load_source",
    "make_source",
    "plan_runs",
    "read_arrays",
    "simulate",
    "simulate_runs",
]

FaultKind = Literal[
    "dead_region", "hot_region", "noisy_towers", "jes_shift", "tracker_ineff", "rate_drop"
]
#: the fault catalogue
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
#: the default size range of each fault in :func:`plan_runs` (drawn log-uniform)
DEFAULT_SIZES: dict[FaultKind, tuple[float, float]] = {
    "dead_region": (0.1, 1.0),
    "hot_region": (0.05, 0.5),
    "noisy_towers": (0.005, 0.1),
    "jes_shift": (0.005, 0.05),
    "tracker_ineff": (0.05, 0.5),
    "rate_drop": (0.01, 0.2),
}

#: tracker acceptance (abs(eta)), calorimeter region edge for random fault locations
TRACKER_ETA = 2.5
#: HCAL tower size in eta and phi, and its minimum energy (reference/detector.md)
TOWER = 0.087
HCAL_EMIN_GEV = 1.0
#: mean energy of a noisy tower's fake deposit above HCAL_EMIN_GEV
NOISE_MEAN_GEV = 5.0
#: the extent of a dead / hot region and of a tracker-inefficiency eta slice
REGION_ETA, REGION_PHI, SLICE_ETA = 0.5, 0.52, 0.5


class Fault(BaseModel):
    """A detector fault injected from LS ``start_ls`` of a run on.

    ``size`` by kind: ``dead_region`` fraction of calorimeter deposits lost in the region
    (1 = fully dead: neutral deposits vanish, charged hadrons keep their track but leave no
    deposit); ``hot_region`` relative gain excess of neutral deposits there (0.2 = +20 %);
    ``noisy_towers`` probability per event that each noisy tower fires (a fake neutral
    deposit of ``1 + Exp(5)`` GeV); ``jes_shift`` relative shift of the jet energy scale
    (all jet constituents); ``tracker_ineff`` fraction of tracks lost in the eta slice
    (charged hadrons are then seen as neutral hadrons with HCAL resolution, electrons as
    photons); ``rate_drop`` fraction of events lost (a trigger / timing problem).
    ``eta`` / ``phi``: the region (``eta`` alone: the tracker slice); ``towers``: the
    noisy towers' (eta, phi) centres. Left empty, :meth:`placed` draws them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    size: float = Field(gt=0)
    start_ls: int = Field(0, ge=0)
    eta: tuple[float, float] | None = None
    phi: tuple[float, float] | None = None
    towers: tuple[tuple[float, float], ...] = ()
    n_towers: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _size(self) -> Fault:
        if self.kind in ("dead_region", "tracker_ineff", "rate_drop") and self.size > 1:
            raise ConfigError(f"{self.kind} size is a fraction, got {self.size}", key="size")
        return self

    def placed(self, rng: np.random.Generator) -> Fault:
        """This fault with a random location where none was given."""
        update: dict[str, Any] = {}
        if self.kind in ("dead_region", "hot_region"):
            if self.eta is None:
                lo = rng.uniform(-TRACKER_ETA, TRACKER_ETA - REGION_ETA)
                update["eta"] = (lo, lo + REGION_ETA)
            if self.phi is None:
                lo = rng.uniform(-np.pi, np.pi - REGION_PHI)
                update["phi"] = (lo, lo + REGION_PHI)
        elif self.kind == "tracker_ineff" and self.eta is None:
            lo = rng.uniform(-TRACKER_ETA, TRACKER_ETA - SLICE_ETA)
            update["eta"] = (lo, lo + SLICE_ETA)
        elif self.kind == "noisy_towers" and not self.towers:
            ieta = rng.integers(-int(TRACKER_ETA / TOWER), int(TRACKER_ETA / TOWER), self.n_towers)
            iphi = rng.integers(-int(np.pi / TOWER), int(np.pi / TOWER), self.n_towers)
            update["towers"] = tuple(
                (float((i + 0.5) * TOWER), float((j + 0.5) * TOWER))
                for i, j in zip(ieta, iphi, strict=True)
            )
        return self.model_copy(update=update)


class RunPlan(BaseModel):
    """One run: its number, LS count, peak luminosity (relative to nominal) and fault."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: int = Field(ge=0)
    n_ls: int = Field(gt=0)
    peak_lumi: float = Field(1.0, gt=0)
    fault: Fault | None = None


class SourceOptions(DetectorSetOptions):
    """The generated QCD jet sample the LS are drawn from (``detector_set``: its detector's
    parameters, as ``heptagon generate --detector-set``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jets: int = Field(4000, gt=0)
    seed: int = Field(1, ge=0)
    pt_min: float = 30.0
    pt_max: float = 1000.0
    radius: float = 0.4
    eta_max: float = TRACKER_ETA
    shard_size: int = Field(1000, gt=0)
    jobs: int = Field(1, ge=1)
    pileup: float | None = Field(None, ge=0, le=200, description="mean pile-up (None: none)")
    mitigation: Mitigation = "none"
    pileup_library: int = Field(1000, gt=0, description="minimum-bias library events")

    @model_validator(mode="after")
    def _mitigation(self) -> SourceOptions:
        if self.mitigation != "none" and self.pileup is None:
            raise ConfigError("--mitigation needs --pileup", key="mitigation")
        return self


class SimulateConfig(BaseModel):
    """How runs are drawn (:func:`plan_runs`) and filled (:func:`simulate_runs`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runs: int = Field(40, gt=0)
    ls_per_run: int = Field(20, gt=0)
    seed: int = Field(0, ge=0)
    first_run: int = Field(1, ge=0)
    events_per_ls: float = Field(1000.0, gt=0, description="mean events per LS at nominal lumi")
    lumi_spread: float = Field(0.3, ge=0, lt=1, description="peak lumi in U(1 - s, 1 + s)")
    lumi_lifetime: float = Field(60.0, gt=0, description="luminosity lifetime [LS]")
    drift: float = Field(0.01, ge=0, description="calorimeter response drift amplitude")
    bad_fraction: float = Field(0.3, ge=0, le=1)
    faults: tuple[FaultKind, ...] = FAULT_KINDS
    sizes: dict[FaultKind, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_SIZES))
    deposit_min_gev: float = Field(2.0, ge=0, description="occupancy-map deposit threshold")
    jet_pt_min: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _sizes(self) -> SimulateConfig:
        for kind in self.faults:
            if kind not in self.sizes:
                raise ConfigError(f"no size range for fault '{kind}'", key=f"sizes.{kind}")
        return self


@dataclass(frozen=True)
class JetSource:
    """A jet sample as flat arrays: events -> jets -> constituents (absolute eta, phi)."""

    event_offsets: np.ndarray
    jet_offsets: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray
    #: the constituent's particle type, a ``heptagon.physics.pdg`` ``CAT_*`` (the index of
    #: its JetClass flag in ``TYPE_FLAGS``)
    ptype: np.ndarray

    @property
    def n_events(self) -> int:
        return len(self.event_offsets) - 1


def make_source(out: Path, opts: SourceOptions, *, show_progress: bool = True) -> Path:
    """Generate (or reuse: finished shards are kept) the QCD source sample in ``out``,
    with ``opts.pileup`` overlaid the way ``heptagon generate --pileup`` does."""
    make_dir(out)
    pileup: dict[str, Any] = {}
    if opts.pileup is not None:
        pileup = {
            "pileup": opts.pileup,
            "mitigation": opts.mitigation,
            "pileup_library": opts.pileup_library,
        }
    generate(
        GenerateOptions(
            sample="QCD",
            jets=opts.jets,
            seed=opts.seed,
            out=out,
            pt_min=opts.pt_min,
            pt_max=opts.pt_max,
            radius=opts.radius,
            eta_max=opts.eta_max,
            shard_size=opts.shard_size,
            jobs=opts.jobs,
            detector_set=opts.detector_set,
            **pileup,
        ),
        show_progress=show_progress,
    )
    return out


def load_source(path: Path) -> JetSource:
    """Read a generated jet dataset (its manifest's Parquet shards) into a :class:`JetSource`."""
    manifest = load_manifest(path)
    columns = ["event", "part_px", "part_py", "part_pz", "part_energy", *TYPE_FLAGS]
    keys, tables = [], []
    for i, rec in enumerate(manifest.files):
        file = Path(path) / rec.file
        if file.suffix != ".parquet":
            raise DataError("the DQM source must be a Parquet dataset", file=file)
        try:
            table = ak.from_parquet(file, columns=columns)
        except FileNotFoundError:
            raise DataError("shard missing (listed in manifest.json)", file=file) from None
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"not a readable Parquet file ({type(err).__name__})", file) from None
        missing = set(columns) - set(table.fields)
        if missing:
            raise DataError("missing in the jet sample", file=file, key=sorted(missing)[0])
        keys.append(i * 1_000_000_000 + ak.to_numpy(table["event"]))
        tables.append(table)
    if not tables:
        raise DataError("the dataset has no files", file=path)
    jets = ak.concatenate(tables)
    key = np.concatenate(keys)
    order = np.argsort(key, kind="stable")
    jets, key = jets[order], key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = ak.to_numpy(ak.num(jets["part_px"]))
    p4: Any = vector.array(
        {
            name: ak.to_numpy(ak.flatten(jets[f"part_{branch}"]))
            for name, branch in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "energy"))
        }
    )
    flags = np.stack([ak.to_numpy(ak.flatten(jets[b])) for b in TYPE_FLAGS], axis=1)
    return JetSource(
        event_offsets=np.r_[starts, len(key)].astype(np.int64),
        jet_offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
        pt=np.asarray(p4.pt, dtype=float),
        eta=np.asarray(p4.eta, dtype=float),
        phi=np.asarray(p4.phi, dtype=float),
        energy=np.asarray(p4.E, dtype=float),
        ptype=np.argmax(flags, axis=1).astype(np.int8),
    )


@dataclass
class DQMData:
    """Per-LS histogram counts and labels of a set of runs.

    ``counts[name]``: ``(n_ls, *bins)``; ``ls``: per-LS columns ``run``, ``ls``, ``lumi``
    (integrated luminosity in expected events), ``n_events``, ``bad``, ``fault``, ``size``;
    ``runs``: one record per run (its :class:`RunPlan` with the placed fault, and ``bad``).
    """

    counts: dict[str, np.ndarray]
    ls: dict[str, np.ndarray]
    runs: list[dict[str, Any]]

    @property
    def run_numbers(self) -> np.ndarray:
        return np.array([r["run"] for r in self.runs], dtype=np.int64)

    @property
    def run_bad(self) -> np.ndarray:
        return np.array([r["bad"] for r in self.runs], dtype=bool)

    @property
    def run_faults(self) -> list[str]:
        return [r["fault"]["kind"] if r["fault"] else "" for r in self.runs]

    def ls_rate(self) -> np.ndarray:
        """Events per unit luminosity of each LS (1 on average at the nominal rate)."""
        return self.ls["n_events"] / np.maximum(self.ls["lumi"], 1e-12)

    def run_counts(self) -> dict[str, np.ndarray]:
        """The histograms summed over each run's LS: ``(n_runs, *bins)``, in ``runs`` order."""
        index = np.searchsorted(self.run_numbers, self.ls["run"])
        out = {}
        for name, c in self.counts.items():
            summed = np.zeros((len(self.runs), *c.shape[1:]))
            np.add.at(summed, index, c)
            out[name] = summed
        return out

    def run_rate(self) -> np.ndarray:
        """Events per unit luminosity of each run."""
        index = np.searchsorted(self.run_numbers, self.ls["run"])
        n = np.bincount(index, self.ls["n_events"], minlength=len(self.runs))
        lumi = np.bincount(index, self.ls["lumi"], minlength=len(self.runs))
        return n / np.maximum(lumi, 1e-12)

    def select(self, runs: Sequence[int] | np.ndarray) -> DQMData:
        """The subset with these run numbers."""
        keep = {int(r) for r in runs}
        mask = np.isin(self.ls["run"], list(keep))
        return DQMData(
            {k: v[mask] for k, v in self.counts.items()},
            {k: v[mask] for k, v in self.ls.items()},
            [r for r in self.runs if r["run"] in keep],
        )

    def save(self, out: Path) -> None:
        """Write ``histograms.npz`` (counts and LS columns) and ``runs.json``, atomically."""
        make_dir(out)
        arrays = {f"h_{k}": v for k, v in self.counts.items()}
        arrays |= {f"ls_{k}": v for k, v in self.ls.items()}
        with atomic_path(out / "histograms.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, allow_pickle=False, **arrays)
        edges = {
            name: [np.asarray(ax.edges).tolist() for ax in spec.book().axes]
            for name, spec in HISTOGRAMS.items()
        }
        DqmRunList.model_validate({"runs": self.runs, "edges": edges}).write(out / "runs.json")


#: the per-LS columns of :class:`DQMData`
_LS_COLUMNS = ("run", "ls", "lumi", "n_events", "bad", "fault", "size")


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive ``path``, read eagerly and without pickles (an
    object array is refused); an unreadable archive is a :class:`DataError` naming it."""
    try:
        with open(path, "rb") as f:  # closed here even when numpy fails half-way
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise DataError("a single array, not an .npz archive", path)
            with z:
                return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(
            f"not a readable .npz archive of plain arrays ({type(err).__name__})", path
        ) from None


def _runs(meta: Path) -> list[dict[str, Any]]:
    """The run records of ``runs.json`` (a :class:`~heptagon.artifacts.dqm.DqmRunList`),
    each fault checked as a :class:`Fault`, sorted by run number."""
    runs = [rec.to_json() for rec in DqmRunList.read(meta).runs]
    for i, rec in enumerate(runs):
        validate_in_file(RunPlan, {k: v for k, v in rec.items() if k != "bad"}, meta, "runs", i)
    return sorted(runs, key=lambda r: r["run"])


def load_data(path: Path) -> DQMData:
    """Read what :meth:`DQMData.save` wrote (``path`` is the directory), checking every
    histogram and LS column (present, numeric, one row per LS, the bins of today's
    histograms) and every run record."""
    npz, meta = Path(path) / "histograms.npz", Path(path) / "runs.json"
    for f in (npz, meta):
        if not f.is_file():
            raise DataError("not a DQM data dir (run `heptagon dqm simulate`)", file=f)
    arrays = read_arrays(npz)
    ls: dict[str, np.ndarray] = {}
    for column in _LS_COLUMNS:
        a = arrays.get(f"ls_{column}")
        numeric = a is not None and (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_)
        n_ls = len(ls["run"]) if ls else None
        if a is None or a.ndim != 1 or (column != "fault" and not numeric):
            raise DataError("missing or not one value per LS", npz, f"ls_{column}")
        if n_ls is not None and len(a) != n_ls:
            raise DataError(f"{len(a)} values for {n_ls} LS (ls_run)", npz, f"ls_{column}")
        ls[column] = a
    n_ls = len(ls["run"])
    counts: dict[str, np.ndarray] = {}
    for name, shape in histogram_shapes().items():
        a = arrays.get(f"h_{name}")
        if a is None:
            raise DataError("histogram missing", npz, f"h_{name}")
        if a.shape != (n_ls, *shape) or not np.issubdtype(a.dtype, np.number):
            raise DataError(
                f"expected numbers of shape {(n_ls, *shape)}, got {a.dtype} {a.shape}",
                npz,
                f"h_{name}",
            )
        counts[name] = a
    runs = _runs(meta)
    unknown = np.setdiff1d(ls["run"], [r["run"] for r in runs])
    if unknown.size:
        raise DataError(f"LS of run {unknown[0]}, which runs.json does not list", npz, "ls_run")
    return DQMData(counts, ls, runs)


def plan_runs(cfg: SimulateConfig) -> list[RunPlan]:
    """Draw the runs of ``cfg``: peak luminosities, which runs are bad, their fault, size
    (log-uniform in ``cfg.sizes``) and first faulty LS (in the first half of the run)."""
    rng = np.random.default_rng([cfg.seed, 0])
    plans = []
    for i in range(cfg.runs):
        fault = None
        if cfg.faults and rng.random() < cfg.bad_fraction:
            kind = cfg.faults[rng.integers(len(cfg.faults))]
            lo, hi = cfg.sizes[kind]
            size = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            start = int(rng.integers(0, max(cfg.ls_per_run // 2, 1)))
            fault = Fault(kind=kind, size=size, start_ls=start)
        peak = float(rng.uniform(1 - cfg.lumi_spread, 1 + cfg.lumi_spread))
        plans.append(
            RunPlan(run=cfg.first_run + i, n_ls=cfg.ls_per_run, peak_lumi=peak, fault=fault)
        )
    return plans


def simulate(cfg: SimulateConfig, source: JetSource, *, show_progress: bool = True) -> DQMData:
    """The runs drawn by :func:`plan_runs`, filled by :func:`simulate_runs`."""
    return simulate_runs(plan_runs(cfg), source, cfg, show_progress=show_progress)


def simulate_runs(
    plans: Sequence[RunPlan],
    source: JetSource,
    cfg: SimulateConfig,
    *,
    show_progress: bool = True,
    year_runs: int | None = None,
) -> DQMData:
    """Fill the LS histograms of ``plans`` (in run-number order). The response drift's
    phase is ``run / year_runs`` (default ``cfg.runs``); each run's randomness comes from
    (seed, run)."""
    plans = sorted(plans, key=lambda p: p.run)
    if len({p.run for p in plans}) < len(plans):
        raise ConfigError("run numbers must be unique", key="runs")
    year = year_runs or cfg.runs
    counts: dict[str, list[np.ndarray]] = {name: [] for name in HISTOGRAMS}
    columns: dict[str, list[Any]] = {
        k: [] for k in ("run", "ls", "lumi", "n_events", "bad", "size", "fault")
    }
    records = []
    with Progress(
        TextColumn("dqm simulate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        disable=not show_progress,
    ) as bar:
        task = bar.add_task("runs", total=len(plans))
        for plan in plans:
            rng = np.random.default_rng([cfg.seed, 1, plan.run])
            fault = plan.fault.placed(rng) if plan.fault else None
            response = 1.0 + cfg.drift * np.sin(2 * np.pi * plan.run / year)
            for ls in range(plan.n_ls):
                lumi = cfg.events_per_ls * plan.peak_lumi * np.exp(-ls / cfg.lumi_lifetime)
                active = fault if fault is not None and ls >= fault.start_ls else None
                hists, n_events = _fill_ls(source, lumi, response, active, cfg, rng)
                for name, values in hists.items():
                    counts[name].append(values)
                for key, value in (
                    ("run", plan.run),
                    ("ls", ls),
                    ("lumi", lumi),
                    ("n_events", n_events),
                    ("bad", active is not None),
                    ("size", active.size if active else 0.0),
                    ("fault", active.kind if active else ""),
                ):
                    columns[key].append(value)
            bad = fault is not None and fault.start_ls < plan.n_ls
            records.append(plan.model_copy(update={"fault": fault}).model_dump() | {"bad": bad})
            bar.advance(task)
    return DQMData(
        {k: np.asarray(v, dtype=np.int32) for k, v in counts.items()},
        {k: np.asarray(v) for k, v in columns.items()},
        records,
    )


def _ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the concatenated ranges ``[s, s + c)`` and which range each belongs to."""
    owner = owner_index(counts)
    first = np.cumsum(counts) - counts
    return np.repeat(starts - first, counts) + np.arange(counts.sum()), owner


def _in(x: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    assert window is not None  # placed faults always carry their region
    return (x >= window[0]) & (x < window[1])


def _fill_ls(
    src: JetSource,
    lumi: float,
    response: float,
    fault: Fault | None,
    cfg: SimulateConfig,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], int]:
    """Draw one LS, apply the fault to its constituents, rebuild the jets, fill."""
    kind = fault.kind if fault else ""
    size = fault.size if fault else 0.0
    n_events = int(rng.poisson(lumi * (1 - size if kind == "rate_drop" else 1.0)))
    # within an LS no event is drawn twice (while the source is large enough): repeated
    # identical jets would make the tails of the jet histograms over-dispersed
    events = rng.choice(src.n_events, n_events, replace=n_events > src.n_events)
    jet_idx, jet_event = _ranges(src.event_offsets[events], np.diff(src.event_offsets)[events])
    idx, jet = _ranges(src.jet_offsets[jet_idx], np.diff(src.jet_offsets)[jet_idx])
    event = jet_event[jet]
    # random azimuthal rotation and eta reflection per drawn event
    flip = rng.choice([-1.0, 1.0], n_events)[event]
    eta = src.eta[idx] * flip
    phi = (
        np.mod(src.phi[idx] + rng.uniform(-np.pi, np.pi, n_events)[event] + np.pi, 2 * np.pi)
        - np.pi
    )
    pt, energy, ptype = src.pt[idx].copy(), src.energy[idx].copy(), src.ptype[idx].copy()
    neutral = (ptype == CAT_NEUTRAL_HADRON) | (ptype == CAT_PHOTON)
    pt[neutral] *= response
    energy[neutral] *= response
    pt, energy, keep, has_calo = _constituent_fault(fault, pt, eta, phi, energy, ptype, rng)
    c = _Candidates(*(a[keep] for a in (pt, eta, phi, energy, ptype, jet, event, has_calo)))
    if fault is not None and fault.kind == "noisy_towers":
        c = _with_noisy_towers(c, fault, n_events, rng)
    histograms = _histograms(
        c.pt, c.eta, c.phi, c.energy, c.ptype, c.jet, c.event, c.has_calo, len(jet_idx),
        n_events, cfg,
    )  # fmt: skip
    return histograms, n_events


@dataclass(frozen=True)
class _Candidates:
    """One LS's candidates (flat arrays): kinematics, type, jet (-1: none) and event index,
    and whether the calorimeter saw them."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray
    ptype: np.ndarray
    jet: np.ndarray
    event: np.ndarray
    has_calo: np.ndarray


def _constituent_fault(
    fault: Fault | None,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    energy: np.ndarray,
    ptype: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply a constituent-level fault (dead / hot region, tracker inefficiency, JES
    shift); ``ptype`` is changed in place. Returns pt, energy, which candidates are kept
    and which the calorimeter saw."""
    kind = fault.kind if fault else ""
    size = fault.size if fault else 0.0
    neutral = (ptype == CAT_NEUTRAL_HADRON) | (ptype == CAT_PHOTON)
    has_calo = ptype != CAT_MUON
    keep = np.ones(len(pt), dtype=bool)
    if fault is not None and kind in ("dead_region", "hot_region"):
        region = _in(eta, fault.eta) & _in(phi, fault.phi) & has_calo
        if kind == "dead_region":
            lost = region & (rng.random(len(pt)) < size)
            keep &= ~(lost & neutral)
            has_calo &= ~lost
        else:
            gain = np.where(region & neutral, 1.0 + size, 1.0)
            pt, energy = pt * gain, energy * gain
    elif fault is not None and kind == "tracker_ineff":
        lost = _in(eta, fault.eta) & ((ptype == CAT_CHARGED_HADRON) | (ptype == CAT_ELECTRON))
        lost &= rng.random(len(pt)) < size
        hadron = lost & (ptype == CAT_CHARGED_HADRON)
        e = energy[hadron]
        smeared = e + rng.normal(size=len(e)) * np.sqrt((0.05 * e) ** 2 + 1.5**2 * e)
        energy[hadron] = smeared
        pt[hadron] = smeared / np.cosh(eta[hadron])
        keep[hadron] = smeared > HCAL_EMIN_GEV
        ptype[hadron] = CAT_NEUTRAL_HADRON
        ptype[lost & ~hadron] = CAT_PHOTON
    elif kind == "jes_shift":
        pt, energy = pt * (1 + size), energy * (1 + size)
    return pt, energy, keep, has_calo


def _with_noisy_towers(
    c: _Candidates, fault: Fault, n_events: int, rng: np.random.Generator
) -> _Candidates:
    """``c`` plus the fake deposits of the fault's noisy towers firing in each event."""
    fires = rng.random((n_events, len(fault.towers))) < fault.size
    ev, tower = np.nonzero(fires)
    centres = np.asarray(fault.towers).reshape(-1, 2)[tower]
    jitter = rng.uniform(-TOWER / 2, TOWER / 2, (len(ev), 2))
    e_fake = HCAL_EMIN_GEV + rng.exponential(NOISE_MEAN_GEV, len(ev))
    fake_eta = centres[:, 0] + jitter[:, 0]
    return _Candidates(
        pt=np.r_[c.pt, e_fake / np.cosh(fake_eta)],
        eta=np.r_[c.eta, fake_eta],
        phi=np.r_[c.phi, centres[:, 1] + jitter[:, 1]],
        energy=np.r_[c.energy, e_fake],
        ptype=np.r_[c.ptype, np.full(len(ev), CAT_NEUTRAL_HADRON, dtype=np.int8)],
        jet=np.r_[c.jet, np.full(len(ev), -1)],
        event=np.r_[c.event, ev],
        has_calo=np.r_[c.has_calo, np.ones(len(ev), dtype=bool)],
    )


def _histograms(
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    energy: np.ndarray,
    ptype: np.ndarray,
    jet: np.ndarray,
    event: np.ndarray,
    has_calo: np.ndarray,
    n_jets: int,
    n_events: int,
    cfg: SimulateConfig,
) -> dict[str, np.ndarray]:
    """Rebuild the jets from their constituents and fill every monitored histogram."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    clustered = jet >= 0
    j = jet[clustered]

    def per_jet(w: np.ndarray) -> np.ndarray:
        return np.bincount(j, w[clustered], minlength=n_jets)

    jpx, jpy, jpz, je = per_jet(px), per_jet(py), per_jet(pz), per_jet(energy)
    jpt = np.hypot(jpx, jpy)
    nconst = np.bincount(j, minlength=n_jets)
    charged = (ptype == CAT_CHARGED_HADRON) | (ptype == CAT_ELECTRON) | (ptype == CAT_MUON)
    sel = (nconst > 0) & (jpt > cfg.jet_pt_min)
    jeta = np.arcsinh(jpz[sel] / jpt[sel])
    jphi = np.arctan2(jpy[sel], jpx[sel])
    h = book()
    h["jet_pt"].fill(jpt[sel])
    h["jet_eta"].fill(jeta)
    h["jet_phi"].fill(jphi)
    for name, code in zip(
        ("frac_chhad", "frac_nhad", "frac_photon", "frac_ele", "frac_mu"), range(5), strict=True
    ):
        h[name].fill(per_jet(energy * (ptype == code))[sel] / je[sel])
    h["jet_nconst"].fill(nconst[sel])
    h["jet_ntracks"].fill(np.bincount(j, charged[clustered], minlength=n_jets)[sel])
    mht_x = np.bincount(event, px, minlength=n_events)
    mht_y = np.bincount(event, py, minlength=n_events)
    h["mht"].fill(np.hypot(mht_x, mht_y))
    deposit = has_calo & (energy > cfg.deposit_min_gev)
    neutral = (ptype == CAT_NEUTRAL_HADRON) | (ptype == CAT_PHOTON)
    h["occ_neutral"].fill(eta[deposit & neutral], phi[deposit & neutral])
    h["occ_charged"].fill(eta[deposit & ~neutral], phi[deposit & ~neutral])
    return {name: np.asarray(hh.values()) for name, hh in h.items()}
