"""`heptagon generate`: sharded, reproducible, resumable jet samples.

A sample is split into shards of at most ``shard_size`` jets of one class. Each shard is
an independent Pythia run whose seed is derived from (seed, class, shard index), so the
same seed gives the same files whatever ``jobs`` is and under Dask. A finished shard is
written atomically with a sidecar record (entries, sha256, Pythia's cross section);
re-running the same command verifies and skips finished shards. ``manifest.json`` is
written last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np

from heptagon.artifacts.manifest import JetClass, JetManifest, ShardRecord
from heptagon.cpu import retain_freed_memory
from heptagon.errors import ConfigError
from heptagon.generate.detector import DetectorConfig, apply_detector
from heptagon.generate.fastsim import FastDetectorConfig, fast_response, generator_jets
from heptagon.generate.jets import FLAVOURS, JETS_PER_EVENT, JetSelection, build_jets
from heptagon.generate.options import EventOptions, GenerateOptions
from heptagon.generate.processes import Process, SampleSet, get_process
from heptagon.generate.shards import (
    branch_names,
    prepare_out,
    run_shards,
    shard_seed,
    write_table,
)
from heptagon.generate.truth import EventRecord, flavour_ghosts, truth_objects
from heptagon.io import sha256sum
from heptagon.physics.systematics import WEIGHT_PREFIX

__all__ = [
    "GenerateOptions",
    "ShardSpec",
    "Summary",
    "decay_settings",
    "generate",
    "make_pythia",
    "pythia_settings",
    "run_shard",
    "versions",
]

ECM_GEV = 14000.0
#: Pythia events per ``nextBatch`` call (fixed: part of what makes a seed reproducible)
BATCH_EVENTS = 100
#: consecutive batches without a selected jet before the run gives up
MAX_EMPTY_BATCHES = 50
_MB_TO_PB = 1e9

COMMON_SETTINGS = (
    f"Beams:eCM = {ECM_GEV}",
    "Print:quiet = on",
    "Random:setSeed = on",
    # particles with c*tau > 10 mm are stable (the LHC convention): K0S, Lambda reach the
    # calorimeters, b/c hadrons decay and displace their products
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10",
)

#: the decays of the ``ak4-flavour`` sample only (docs/flavour.md): K0S (c tau 26.8 mm),
#: Lambda (78.9 mm) and the other hyperons (Sigma, Xi, Omega: 24-87 mm) decay in flight
#: where their decay point lies inside the tracker volume (r < 1.1 m, |z| < 2.8 m), so
#: their charged daughters are displaced tracks (the light-jet SV fakes CMS sees); pi+-,
#: K+- and K0L (c tau >= 3.7 m) stay stable. Other samples keep ``COMMON_SETTINGS``, so
#: their results stay comparable with earlier ones.
FLAVOUR_DECAY_SETTINGS = (
    "ParticleDecays:tau0Max = 1000",
    "ParticleDecays:limitCylinder = on",
    "ParticleDecays:xyMax = 1100",
    "ParticleDecays:zMax = 2800",
)


def pythia_settings(
    process: Process, pt_min: float, mpi: bool, seed: int, extra: tuple[str, ...] = ()
) -> list[str]:
    """The full Pythia configuration of one shard. ``PhaseSpace:pTHatMin`` is 0.8 times the
    lower edge of the jet-pT window: a cut at the edge would sculpt the jet spectrum.
    ``extra``: the settings of a variation (:meth:`GenerateOptions.generator_settings`)."""
    return [
        *COMMON_SETTINGS,
        *decay_settings(process),
        *extra,
        f"PartonLevel:MPI = {'on' if mpi else 'off'}",
        f"PhaseSpace:pTHatMin = {0.8 * pt_min:g}",
        *process.settings,
        f"Random:seed = {seed}",
    ]


#: the full detector's settings of the ``ak4-flavour`` sample only (docs/flavour.md, the
#: fields' meaning in :class:`DetectorConfig`): tracks from displaced origins are found
#: with an efficiency falling linearly to 0 at 60 cm production radius, and 3% of tracks
#: have impact-parameter errors 3 times the quoted ones (non-Gaussian tails)
FLAVOUR_DETECTOR: dict[str, float] = {
    "displaced_track_rmax": 600.0,
    "ip_tail_fraction": 0.03,
    "ip_tail_scale": 3.0,
}


def decay_settings(process: Process) -> tuple[str, ...]:
    """The decay settings a process adds to ``COMMON_SETTINGS``: those of
    :data:`FLAVOUR_DECAY_SETTINGS` for the flavour classes, none for the others."""
    return FLAVOUR_DECAY_SETTINGS if process.truth.kind == "flavour" else ()


@dataclass(frozen=True)
class ShardSpec:
    """One unit of work: ``n_jets`` jets of class ``cls`` written to ``path``."""

    cls: str
    label: str
    labels: tuple[str, ...]
    index: int
    n_jets: int
    seed: int
    settings: tuple[str, ...]
    selection: JetSelection
    detector: dict[str, Any] | None
    path: str
    format: str
    pileup: float = 0.0
    mitigation: Literal["none", "chs", "puppi"] = "none"
    library: str | None = None  # the minimum-bias library; None: no pile-up
    chain: Literal["full", "fast"] = "full"  # the detector chain of ``detector``
    weights: tuple[str, ...] = ()  # the weight variations whose columns are written

    @property
    def entries(self) -> int:
        """Entries (jets) the shard holds."""
        return self.n_jets


def make_pythia(settings: tuple[str, ...]) -> Any:
    """An initialised, quiet ``pythia8mc.Pythia`` with ``settings`` (one string each);
    :class:`ConfigError` if Pythia rejects a setting or fails to initialise."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting '{line}'", key="settings")
    if not pythia.init():
        raise ConfigError("Pythia failed to initialise with these settings", key="settings")
    return pythia


def _batch_jets(
    spec: ShardSpec,
    pythia: Any,
    library: Any,
    det: DetectorConfig | FastDetectorConfig | None,
    rng: Any,
    first_event: int = 0,
) -> tuple[dict[str, Any], int]:
    """The selected jets of one batch of Pythia events (with pile-up when ``library``
    is given) and the number of events generated; flavour samples get the generator-level
    jet of each jet (:func:`~heptagon.generate.fastsim.generator_jets`). With pile-up,
    only the events whose hard scatter can give a selected jet are reconstructed, each
    with its own pile-up seed (``spec.seed``, ``first_event`` + its index in the batch):
    :func:`heptagon.generate.pileup.jet_focus`."""
    process = get_process(spec.cls)
    flavour = FLAVOURS.index(spec.label) if process.truth.kind == "flavour" else None
    batch = pythia.nextBatch(BATCH_EVENTS)
    record = EventRecord.from_batch(batch.prt)
    columns, rho_from = None, None
    if isinstance(det, FastDetectorConfig):
        candidates = fast_response(record.final_state(), det, rng)
    elif library is None:
        candidates = apply_detector(record.final_state(), det, rng)
    else:
        from heptagon.generate.pileup import jet_focus, reconstruct  # it imports this module

        assert isinstance(det, DetectorConfig)  # GenerateOptions: pile-up needs full
        hard = record.final_state()
        seeds = np.column_stack(
            [np.full(len(hard.counts), spec.seed), first_event + np.arange(len(hard.counts))]
        )
        focus = jet_focus(hard, spec.selection, spec.pileup, spec.mitigation, seeds, rng)
        pu = reconstruct(hard, library, spec.pileup, spec.mitigation, det, rng, focus)
        candidates, columns, rho_from = pu.candidates, pu.columns, pu.unmitigated
    jets = build_jets(
        candidates,
        spec.selection,
        truth=(
            truth_objects(record, process.truth)
            if process.truth.kind in ("resonance", "parton")
            else None
        ),
        ghosts=flavour_ghosts(record) if flavour is not None else None,
        flavour=flavour,
        with_sv=flavour is not None,
        truth_id=process.truth.kind == "parton",
        columns=columns,
        rho_from=rho_from,
    )
    if flavour is not None:
        axes = (jets["event"], jets["jet_eta"], jets["jet_phi"])
        jets.update(generator_jets(record.final_state(), spec.selection, *axes))
    jets.update(shower_weights(pythia, batch, spec.weights, jets["event"]))
    return jets, len(batch)


def shower_weights(
    pythia: Any, batch: Any, names: tuple[str, ...], event: Any
) -> dict[str, np.ndarray]:
    """The column of each weight variation in ``names`` (``weight_<name>``, Pythia's
    ``UncertaintyBands`` weight over the nominal one) for the entries of the events
    ``event`` (indices into ``batch``)."""
    if not names:
        return {}
    labels = [str(label).lower() for label in pythia.infoPython().weightNameVector()]
    w = np.asarray(ak.to_numpy(batch.info.weights), dtype=np.float64)
    idx = np.asarray(event)
    return {f"{WEIGHT_PREFIX}{name}": (w[:, labels.index(name)] / w[:, 0])[idx] for name in names}


def run_shard(spec: ShardSpec, report: Callable[[int], None] | None = None) -> ShardRecord:
    """Generate and write one shard; return its record for the manifest."""
    pythia = make_pythia(spec.settings)
    rng = np.random.default_rng(spec.seed)
    det: DetectorConfig | FastDetectorConfig | None = None
    if spec.detector is not None:
        det = (FastDetectorConfig if spec.chain == "fast" else DetectorConfig)(**spec.detector)
    library = None
    if spec.library is not None:
        from heptagon.generate.pileup import detector_library, read_library  # imports us

        assert isinstance(det, DetectorConfig)  # GenerateOptions: pile-up needs full
        # a batch with pile-up makes and frees arrays of millions of entries: reuse the
        # pages instead of faulting them in again (docs/pileup.md, "Cost")
        retain_freed_memory()
        library = detector_library(read_library(Path(spec.library)), det, rng)
    parts: list[dict[str, Any]] = []
    n_jets = n_events = empty = 0
    while n_jets < spec.n_jets:
        jets, events = _batch_jets(spec, pythia, library, det, rng, n_events)
        jets["event"] = jets["event"] + n_events
        n_events += events
        got = len(jets["jet_pt"])
        empty = 0 if got else empty + 1
        if empty >= MAX_EMPTY_BATCHES:
            raise ConfigError(
                f"no {spec.cls} jet passed the selection in {empty * BATCH_EVENTS} events; "
                "check the pT window, radius and |eta| cut",
                key="pt_min",
            )
        parts.append(jets)
        n_jets += got
        if report is not None:
            report(min(got, spec.n_jets - (n_jets - got)))
    table = {k: ak.concatenate([p[k] for p in parts])[: spec.n_jets] for k in parts[0]}
    for label in spec.labels:
        table[f"label_{label}"] = np.full(spec.n_jets, label == spec.label)
    path = Path(spec.path)
    write_table(table, path, spec.format)
    info = pythia.infoPython()
    return ShardRecord(
        file=f"shards/{path.name}",
        cls=spec.cls,
        entries=spec.n_jets,
        sha256=sha256sum(path),
        seed=spec.seed,
        events_generated=n_events,
        jets_selected=n_jets,
        sigma_gen_pb=info.sigmaGen() * _MB_TO_PB,
        sigma_err_pb=info.sigmaErr() * _MB_TO_PB,
        n_tried=int(info.nTried()),
        n_accepted=int(info.nAccepted()),
    )


def _plan(opts: GenerateOptions) -> tuple[list[ShardSpec], dict[str, Any]]:
    pileup = None
    if opts.pileup_mu is not None:
        from heptagon.generate.pileup import focus_settings, pileup_settings  # imports us

        pileup = pileup_settings(
            opts.pileup_mu,
            opts.mitigation,
            opts.pileup_library,
            shard_seed(opts.seed, "minbias", 0),
        ) | {"jet_focus": focus_settings()}
    sample = opts.sample_set
    sel = opts.selection()
    det = opts.detector_config()
    chain: Literal["full", "fast"] = "fast" if opts.detector == "fast" else "full"
    reach = FastDetectorConfig().calo_eta_max
    if chain == "fast" and sel.eta_max + sel.radius > reach:
        raise ConfigError(
            f"--detector fast covers |eta| < {reach:g} (no forward calorimeter): the jets "
            f"need eta-max + radius <= {reach:g}, not {sel.eta_max + sel.radius:g}",
            key="eta_max",
        )
    flavour = any(get_process(c).truth.kind == "flavour" for c in sample.classes)
    knobs = {**(FLAVOUR_DETECTOR if flavour and chain == "full" else {}), **opts.detector_knobs}
    labels = tuple(sample.label_of(c) for c in sample.classes)
    ext = "parquet" if opts.format == "parquet" else "root"
    specs = []
    for cls in sample.classes:
        process = get_process(cls)
        n_shards = -(-opts.jets // opts.shard_size)
        for i in range(n_shards):
            seed = shard_seed(opts.seed, cls, i)
            specs.append(
                ShardSpec(
                    cls=cls,
                    label=sample.label_of(cls),
                    labels=labels,
                    index=i,
                    n_jets=min(opts.shard_size, opts.jets - i * opts.shard_size),
                    seed=seed,
                    settings=tuple(
                        pythia_settings(
                            process, sel.pt_min, opts.use_mpi(), seed, opts.generator_settings()
                        )
                    ),
                    selection=sel,
                    detector=None if det is None else det(**knobs).settings(),
                    chain=chain,
                    weights=opts.weight_names,
                    path=str(opts.out / "shards" / f"{cls}_{i:04d}.{ext}"),
                    format=opts.format,
                    pileup=opts.pileup_mu or 0.0,
                    mitigation=opts.mitigation,
                    library=None if pileup is None else str(opts.out / pileup["library"]["file"]),
                )
            )
    settings = {
        "sample": opts.sample,
        "jets_per_class": opts.jets,
        "seed": opts.seed,
        "format": opts.format,
        "shard_size": opts.shard_size,
        "selection": asdict(sel) | {"jets_per_event": JETS_PER_EVENT},
        "mpi": opts.use_mpi(),
        "detector": None if det is None else det(**knobs).settings(),
    }
    if chain == "fast":  # a full sample's settings are those from before the fast chain
        settings["detector_chain"] = chain
    if pileup is not None:
        settings["pileup"] = pileup
    settings |= variation_settings(opts)
    return specs, settings


def variation_settings(opts: GenerateOptions | EventOptions) -> dict[str, Any]:
    """The settings (and manifest) entries of the sample's variation and weight columns:
    none for a nominal sample without weight columns (its settings stay those from before
    variations existed, so such a dataset resumes)."""
    out: dict[str, Any] = {}
    variation = opts.variation_spec()
    if variation is not None:
        out["variation"] = variation.record()
    if opts.weight_variations:
        out["weight_variations"] = list(opts.weight_names)
    return out


@dataclass(frozen=True)
class Summary:
    """What a generate run made."""

    out: Path
    manifest: JetManifest
    wall_s: float
    jets_per_s: float
    skipped_shards: int


def versions() -> dict[str, str]:
    """Versions of heptagon and the generation toolchain, for the manifest."""
    from heptagon import __version__

    return {
        "heptagon": __version__,
        **{pkg: version(pkg) for pkg in ("pythia8mc", "fastjet", "awkward", "numpy", "uproot")},
    }


def _class_summary(records: list[ShardRecord], sample: SampleSet) -> dict[str, JetClass]:
    out: dict[str, JetClass] = {}
    for cls in sample.classes:
        rs = [r for r in records if r.cls == cls]
        w = np.array([r.n_accepted for r in rs], dtype=float)
        sig = np.array([r.sigma_gen_pb for r in rs], dtype=float)
        err = np.array([r.sigma_err_pb for r in rs], dtype=float)
        process = get_process(cls)
        out[cls] = JetClass(
            label=f"label_{sample.label_of(cls)}",
            description=process.description,
            truth_rule=asdict(process.truth),
            pythia_settings=[*decay_settings(process), *process.settings],
            jets=sum(r.entries for r in rs),
            jets_selected=sum(r.jets_selected or 0 for r in rs),
            events_generated=sum(r.events_generated or 0 for r in rs),
            n_tried=sum(r.n_tried or 0 for r in rs),
            n_accepted=int(w.sum()),
            # shards are independent estimates: combine them weighted by accepted events
            sigma_gen_pb=float((w * sig).sum() / w.sum()),
            sigma_err_pb=float(np.sqrt(((w * err) ** 2).sum()) / w.sum()),
        )
    return out


def generate(opts: GenerateOptions, *, show_progress: bool = True) -> Summary:
    """Generate (or finish generating) the sample described by ``opts`` in ``opts.out``."""
    specs, settings = _plan(opts)
    prepare_out(opts.out, settings)
    if opts.pileup is not None:
        from heptagon.generate.pileup import minbias_library, with_library_checksum

        lib = settings["pileup"]["library"]
        minbias_library(opts.out / lib["file"], lib["events"], lib["seed"])
    done = run_shards(
        specs,
        run_shard,
        jobs=opts.jobs,
        scheduler=opts.scheduler,
        title=f"generate {opts.sample}",
        unit="jets",
        show_progress=show_progress,
    )
    ordered = done.records
    wall = done.wall_s
    manifest = JetManifest(
        kind="jets",
        sample=opts.sample,
        description=opts.sample_set.description,
        versions=versions(),
        generator={
            "beams_ecm_gev": ECM_GEV,
            "common_settings": list(COMMON_SETTINGS),
            "mpi": opts.use_mpi(),
            "pthat_min_gev": 0.8 * settings["selection"]["pt_min"],
            "batch_events": BATCH_EVENTS,
        },
        **{k: settings[k] for k in ("seed", "jets_per_class", "format", "shard_size")},
        selection=settings["selection"],
        detector=settings["detector"],
        detector_chain=settings.get("detector_chain", "full"),
        variation=settings.get("variation"),
        weight_variations=settings.get("weight_variations", []),
        pileup=(
            with_library_checksum(opts.out, settings["pileup"])
            if opts.pileup is not None
            else None
        ),
        classes=_class_summary(ordered, opts.sample_set),
        files=[r.listing() for r in ordered],
        branches=branch_names(opts.out / ordered[0].file, opts.format),
    )
    manifest.write(opts.out / "manifest.json")
    return Summary(
        out=opts.out,
        manifest=manifest,
        wall_s=wall,
        jets_per_s=done.made / wall if wall > 0 else 0.0,
        skipped_shards=done.skipped,
    )
