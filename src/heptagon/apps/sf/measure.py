"""``heptagon sf measure | closure | toys``: a tagger's data/simulation scale factors from
tag-and-probe samples (docs/scale-factors.md).

:func:`measure` scores the nominal simulation, the pseudo-data (or data) and every
systematic-variation sample with the tagger's ONNX export
(:func:`heptagon.infer.predict.predict`, into ``OUT/scores/<role>/``), cuts on the score
at the working point and fits, per probe-pT bin, the probe-jet soft-drop mass in the pass
and fail categories (:mod:`heptagon.physics.scale_factors`). Systematic groups come from
the samples' manifests: each ``--variation`` dataset's ``variation`` (``jes_hcal_up``,
...: up / down of one group pair up; a one-sided one is mirrored) and the weight columns
of the nominal simulation made with ``--weight-variations`` (parton-shower ISR / FSR).
The working point is ``--threshold`` on the score, or ``--working-point EFF``: the score
above which a fraction EFF of the simulated merged tops (all probe pT) pass.

:func:`closure` applies the SF to the simulation's efficiency and compares it, bin by
bin, with the pseudo-data's true efficiency from its sealed truth; :func:`toys` measures
the coverage of the quoted uncertainty with toys drawn from the fitted models. Both add
their section to the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from heptagon.artifacts.scale_factors import (
    Closure,
    ScaleFactorBin,
    ScaleFactorTable,
    TagProbeManifest,
    ToyStudy,
)
from heptagon.errors import ConfigError, DataError
from heptagon.io import sha256sum
from heptagon.logs import get_logger
from heptagon.physics.scale_factors import (
    BinFit,
    ProbeJets,
    Templates,
    fit_bin,
    templates_in_bin,
    toy_pulls,
)

__all__ = [
    "DEFAULT_MASS_EDGES",
    "DEFAULT_PT_EDGES",
    "OBSERVABLE",
    "PT_VARIABLE",
    "Scored",
    "closure",
    "measure",
    "toys",
]

#: probe pT bins (GeV) and soft-drop mass bins (GeV) of the fit
DEFAULT_PT_EDGES = (300.0, 400.0, 550.0, 1000.0)
DEFAULT_MASS_EDGES = tuple(float(x) for x in np.arange(40.0, 251.0, 15.0))
OBSERVABLE = "jet_sdmass"
PT_VARIABLE = "jet_pt"
_TRUTH = "probe_category"
_SIGNAL_CATEGORY = 0
_log = get_logger("sf")


@dataclass(frozen=True)
class Scored:
    """A scored tag-and-probe dataset: its manifest, the score outputs (one per shard,
    row-aligned) and their columns."""

    dataset: Path
    manifest: TagProbeManifest
    outputs: list[Path]
    columns: dict[str, np.ndarray]

    def probes(self, score: str, threshold: float, weight: str | None = None) -> ProbeJets:
        """The probe jets: pass = ``score > threshold``; ``weight`` a weight column."""
        n = self.columns[PT_VARIABLE].size
        signal = None
        if _TRUTH in self.columns:
            signal = self.columns[_TRUTH] == _SIGNAL_CATEGORY
        return ProbeJets(
            pt=self.columns[PT_VARIABLE],
            x=self.columns[OBSERVABLE],
            passed=self.columns[score] > threshold,
            weight=np.ones(n) if weight is None else self.columns[weight],
            signal=signal,
        )


def _load(dataset: Path, outputs: Path) -> Scored:
    """A dataset and its score outputs in ``outputs`` (one ``<shard stem>.parquet`` per
    shard, as predict writes them)."""
    path = dataset / "manifest.json"
    if not path.is_file():
        raise DataError("is not a tag-and-probe dataset dir (no manifest.json)", dataset)
    manifest = TagProbeManifest.read(path)
    files = [outputs / f"{Path(f.file).stem}.parquet" for f in manifest.files]
    for f in files:
        if not f.is_file():
            raise DataError("missing score output: run heptagon sf measure first", f)
    tables = [pq.read_table(f) for f in files]
    columns = {
        name: np.concatenate([t[name].to_numpy() for t in tables])
        for name in tables[0].column_names
    }
    return Scored(dataset, manifest, files, columns)


def _score(model: Path, dataset: Path, outputs: Path, *, truth: bool) -> Scored:
    """Score ``dataset`` with ``model`` into ``outputs``; ``truth``: a simulation (its
    truth category and weight columns are copied)."""
    from heptagon.infer.predict import predict

    path = dataset / "manifest.json"
    if not path.is_file():
        raise DataError("is not a tag-and-probe dataset dir (no manifest.json)", dataset)
    manifest = TagProbeManifest.read(path)
    observers = [PT_VARIABLE, OBSERVABLE]
    if truth:
        if manifest.pseudo_data:
            raise DataError("is pseudo-data: it has no truth for templates", dataset)
        observers += [_TRUTH, *(f"weight_{w}" for w in manifest.weight_variations)]
    predict(model, dataset, outputs, observers=observers, progress=False)
    return _load(dataset, outputs)


def _score_threshold(probes: ProbeJets, scores: np.ndarray, working_point: float) -> float:
    """The score above which a fraction ``working_point`` of the simulated merged tops
    pass (weighted)."""
    assert probes.signal is not None
    s, w = scores[probes.signal], probes.weight[probes.signal]
    order = np.argsort(s)[::-1]
    cum = np.cumsum(w[order]) / w.sum()
    k = min(int(np.searchsorted(cum, working_point)), s.size - 1)
    return float(s[order][k])


def _efficiency(jets: ProbeJets) -> tuple[float, float]:
    """The weighted pass fraction of the merged tops and its binomial uncertainty."""
    assert jets.signal is not None
    w, passed = jets.weight[jets.signal], jets.passed[jets.signal]
    total = w.sum()
    if total <= 0:
        return float("nan"), float("nan")
    eff = float(w[passed].sum() / total)
    n_eff = total**2 / (w**2).sum()
    return eff, float(np.sqrt(eff * (1 - eff) / n_eff))


def _groups(
    variations: Sequence[Scored], sim: Scored
) -> dict[str, tuple[tuple[Scored, str | None], tuple[Scored, str | None] | None]]:
    """Systematic group -> (up, down or None): each a scored sample and its weight column
    (None: the sample's own events)."""
    from heptagon.physics.systematics import get_variation

    sides: dict[str, dict[str, tuple[Scored, str | None]]] = {}
    for v in variations:
        if v.manifest.variation is None:
            raise DataError("is not a systematic-variation sample (no variation)", v.dataset)
        record = v.manifest.variation
        direction = "down" if record["direction"] == "down" else "up"
        sides.setdefault(record["group"], {})[direction] = (v, None)
    for name in sim.manifest.weight_variations:
        var = get_variation(name)
        direction = "down" if var.direction == "down" else "up"
        sides.setdefault(var.group, {})[direction] = (sim, f"weight_{name}")
    out = {}
    for group, pair in sorted(sides.items()):
        if "up" not in pair:
            pair = {"up": pair["down"]}  # a lone down: mirrored like a lone up
        out[group] = (pair["up"], pair.get("down"))
    return out


def _probes(scored: Scored, weight: str | None, score: str, threshold: float) -> ProbeJets:
    if score not in scored.columns:
        raise ConfigError(f"no score column {score!r} in the outputs", key="score")
    return scored.probes(score, threshold, weight)


@dataclass(frozen=True)
class _Setup:
    """What a measurement fits: the nominal simulation, the data, the variations (by
    systematic group), the score cut and the binning."""

    sim: ProbeJets
    data: ProbeJets
    variations: dict[str, tuple[ProbeJets, ProbeJets | None]]
    pt_edges: tuple[float, ...]
    mass_edges: np.ndarray


def _setup(
    sim: Scored,
    data: Scored,
    variations: Sequence[Scored],
    score: str,
    threshold: float,
    pt_edges: Sequence[float],
    mass_edges: Sequence[float],
) -> _Setup:
    groups = {}
    for group, (up, down) in _groups(variations, sim).items():
        groups[group] = (
            _probes(*up, score, threshold),
            None if down is None else _probes(*down, score, threshold),
        )
    return _Setup(
        sim=_probes(sim, None, score, threshold),
        data=_probes(data, None, score, threshold),
        variations=groups,
        pt_edges=tuple(pt_edges),
        mass_edges=np.asarray(mass_edges, dtype=float),
    )


def _fit_bins(
    setup: _Setup, data: Path, *, breakdown: bool = True
) -> list[tuple[Templates, BinFit]]:
    """The fit of each pT bin; :class:`DataError` naming ``data`` for a bin that cannot
    be fitted (no data or simulation in it, or the minimisation fails)."""
    import pyhf

    out = []
    for lo, hi in zip(setup.pt_edges[:-1], setup.pt_edges[1:], strict=True):
        t = templates_in_bin(setup.sim, setup.variations, (lo, hi), setup.mass_edges)
        try:
            fit = fit_bin(t, setup.data.in_pt_bin(lo, hi), setup.mass_edges, breakdown=breakdown)
        except (ValueError, FloatingPointError, pyhf.exceptions.FailedMinimization) as err:
            raise DataError(f"cannot fit the pT bin {lo:g}-{hi:g} GeV ({err})", data) from None
        _log.info("pT %g-%g GeV: SF %.3f +- %.3f", lo, hi, fit.sf, fit.sf_err)
        out.append((t, fit))
    return out


def _table_bin(setup: _Setup, lo: float, hi: float, fit: BinFit) -> ScaleFactorBin:
    sim = setup.sim.in_pt_bin(lo, hi)
    eff, stat = _efficiency(sim)
    syst = {}
    for group, (up, down) in setup.variations.items():
        shifts = [abs(_efficiency(v.in_pt_bin(lo, hi))[0] - eff) for v in (up, down) if v]
        syst[group] = float(max(shifts))
    data = setup.data.in_pt_bin(lo, hi)
    return ScaleFactorBin(
        pt_low=lo,
        pt_high=hi,
        n_data_pass=int(data.passed.sum()),
        n_data_fail=int((~data.passed).sum()),
        eff_sim=eff,
        eff_sim_stat=stat,
        eff_sim_syst=syst,
        eff_data=fit.eff_data,
        eff_data_err=fit.eff_data_err,
        sf=fit.sf,
        sf_err=fit.sf_err,
        breakdown=fit.breakdown,
    )


def _default_score(columns: Sequence[str]) -> str:
    scores = [c for c in columns if c.startswith("score_")]
    if not scores:
        raise ConfigError("the model's outputs have no score column", key="score")
    return scores[-1]


def measure(
    model: Path,
    sim: Path,
    data: Path,
    out: Path,
    *,
    variations: Sequence[Path] = (),
    score: str | None = None,
    threshold: float | None = None,
    working_point: float | None = None,
    pt_edges: Sequence[float] = DEFAULT_PT_EDGES,
    mass_edges: Sequence[float] = DEFAULT_MASS_EDGES,
) -> ScaleFactorTable:
    """Measure the scale factors (module docstring); write ``out/scale_factors.json``."""
    if (threshold is None) == (working_point is None):
        raise ConfigError("give one of --threshold and --working-point", key="threshold")
    if working_point is not None and not 0 < working_point < 1:
        raise ConfigError("--working-point is an efficiency in (0, 1)", key="working_point")
    for key, edges in (("pt_edges", pt_edges), ("mass_edges", mass_edges)):
        if len(edges) < 2 or list(edges) != sorted(set(edges)):
            raise ConfigError(f"--{key.replace('_', '-')}: at least two increasing values", key)
    from heptagon.publish.onnx import model_file

    tagger = model_file(model, verify=False)  # a missing model is named before any work
    scored_sim = _score(model, sim, out / "scores" / "simulation", truth=True)
    scored_data = _score(model, data, out / "scores" / "data", truth=False)
    scored_vars = [
        _score(model, v, out / "scores" / f"variation_{i}", truth=True)
        for i, v in enumerate(variations)
    ]
    score = score or _default_score(list(scored_sim.columns))
    if threshold is None:
        assert working_point is not None
        nominal = scored_sim.probes(score, 0.0) if score in scored_sim.columns else None
        if nominal is None:
            raise ConfigError(f"no score column {score!r} in the outputs", key="score")
        threshold = _score_threshold(nominal, scored_sim.columns[score], working_point)
    setup = _setup(scored_sim, scored_data, scored_vars, score, threshold, pt_edges, mass_edges)
    fits = _fit_bins(setup, data)
    table = ScaleFactorTable(
        tagger=str(model),
        tagger_sha256=sha256sum(tagger),
        sqrt_s_gev=float(scored_sim.manifest.generator["beams_ecm_gev"]),
        score=score,
        threshold=threshold,
        working_point=working_point,
        observable=OBSERVABLE,
        observable_edges=[float(x) for x in setup.mass_edges],
        pt_variable=PT_VARIABLE,
        pt_edges=[float(x) for x in setup.pt_edges],
        fit=FIT_DESCRIPTION,
        simulation=str(sim),
        data=str(data),
        variation_samples=[str(v) for v in variations],
        variations=sorted(setup.variations),
        bins=[
            _table_bin(setup, lo, hi, fit)
            for (lo, hi), (_, fit) in zip(
                zip(setup.pt_edges[:-1], setup.pt_edges[1:], strict=True), fits, strict=True
            )
        ],
    )
    table.write(out / TABLE)
    return table


#: the table's file name in the measurement's output dir
TABLE = "scale_factors.json"
#: the fit, in words (the table records it)
FIT_DESCRIPTION = (
    "pyhf binned likelihood per probe-pT bin: pass and fail channels of the probe soft-drop "
    "mass; signal (merged top) and background templates from simulation with free pass / "
    "fail normalisations, one histosys per systematic group, staterror; minuit"
)


def _reload(out: Path) -> tuple[ScaleFactorTable, Scored, Scored, list[Scored]]:
    table = ScaleFactorTable.read(out / TABLE)
    sim = _load(Path(table.simulation), out / "scores" / "simulation")
    data = _load(Path(table.data), out / "scores" / "data")
    variations = [
        _load(Path(v), out / "scores" / f"variation_{i}")
        for i, v in enumerate(table.variation_samples)
    ]
    return table, sim, data, variations


def closure(out: Path, *, limit: float = 2.0) -> ScaleFactorTable:
    """Compare ``SF x eff_sim`` with the pseudo-data's true efficiency (sealed truth) in
    each bin; add the closure to ``out/scale_factors.json``."""
    from heptagon.generate.tagprobe import sealed_truth

    table, _, data, _ = _reload(out)
    truth = sealed_truth(data.dataset)
    category = np.concatenate([truth[p.stem] for p in data.outputs])
    jets = data.probes(table.score, table.threshold)
    jets = ProbeJets(jets.pt, jets.x, jets.passed, jets.weight, category == _SIGNAL_CATEGORY)
    true, predicted, pulls = [], [], []
    for b in table.bins:
        eff_true = _efficiency(jets.in_pt_bin(b.pt_low, b.pt_high))[0]
        pred = b.sf * b.eff_sim
        true.append(eff_true)
        predicted.append(pred)
        pulls.append((pred - eff_true) / (b.sf_err * b.eff_sim))
    table = table.model_copy(
        update={
            "closure": Closure(
                eff_true=true,
                eff_predicted=predicted,
                pulls=pulls,
                within_uncertainty=bool(np.all(np.abs(pulls) < limit)),
                limit=limit,
            )
        }
    )
    table.write(out / TABLE)
    return table


def toys(out: Path, *, n_toys: int = 50, seed: int = 0) -> ScaleFactorTable:
    """Coverage: refit the measurement's bins and draw ``n_toys`` toys per bin from each
    fitted model; add the pull means and widths to ``out/scale_factors.json``."""
    if n_toys < 2:
        raise ConfigError("--toys needs at least 2 toys", key="toys")
    table, sim, data, variations = _reload(out)
    setup = _setup(
        sim, data, variations, table.score, table.threshold, table.pt_edges, table.observable_edges
    )
    pulls = [
        toy_pulls(fit, n_toys, seed + i)
        for i, (_, fit) in enumerate(_fit_bins(setup, data.dataset, breakdown=False))
    ]
    every = np.concatenate(pulls)
    if min(p.size for p in pulls) < 2:
        raise DataError("fewer than 2 toy fits converged in a bin", out / TABLE, "toys")
    table = table.model_copy(
        update={
            "toys": ToyStudy(
                toys=n_toys,
                seed=seed,
                pull_mean=[float(p.mean()) for p in pulls],
                pull_width=[float(p.std(ddof=1)) for p in pulls],
                pull_mean_all=float(every.mean()),
                pull_width_all=float(every.std(ddof=1)),
                pull_median=[float(np.median(p)) for p in pulls],
                pull_width_robust=[
                    float(1.4826 * np.median(np.abs(p - np.median(p)))) for p in pulls
                ],
                outliers=[int((np.abs(p) > 5).sum()) for p in pulls],
                fits=int(every.size),
            )
        }
    )
    table.write(out / TABLE)
    return table
