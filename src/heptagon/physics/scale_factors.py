"""Data/simulation scale factors of a jet tagger from a tag-and-probe pass/fail template
fit, with pyhf.

The probe jets of a control region (``heptagon generate-events ttbar-semilep``: the
hadronic large-R jet of semileptonic ttbar events) are split by the tagger's working point
into a ``pass`` and a ``fail`` category. In each probe pT bin the probe-jet mass (or any
other observable) is histogrammed in both, and the data are fitted with templates from
simulation, split by the probe's truth category: ``signal`` (a fully merged top, the
tagger's signal) and ``background`` (everything else: merged W, unmerged). The model is a
pyhf workspace with two channels (``pass``, ``fail``) and

- four free normalisations (``normfactor``): ``mu_signal_pass``, ``mu_signal_fail``,
  ``mu_background_pass``, ``mu_background_fail``, so the data choose the signal's and the
  background's pass fractions;
- one nuisance parameter per systematic variation (``histosys``: the up / down templates
  of both samples in both channels, shape and normalisation together, built from the
  variation's own simulation), Gaussian-constrained;
- the simulation's statistical uncertainty per bin (``staterror``, Barlow-Beeston lite).

Each sample's expected yield is clipped at 0 (``clip_sample_data``): the piecewise-linear
interpolation of several variations can otherwise make it negative during the fit.

The signal efficiency in data is ``eff_data = S_pass / (S_pass + S_fail)`` of the fitted
signal yields (their interpolated templates times the normalisations), its uncertainty
propagated from the fit's covariance (minuit's Hessian; HESSE where MIGRAD's estimate is
not accurate, and a fit whose covariance stays inaccurate counts as failed) by the
numerical gradient of ``eff_data`` in every parameter; the scale factor is
``SF = eff_data / eff_sim`` with
``eff_sim`` the nominal simulation's weighted efficiency (the reference the SF applies
to, taken as exact: its own statistical uncertainty enters through ``staterror``).

Breakdown: ``data_stat`` is the uncertainty with every nuisance parameter fixed at its
best-fit value (only the normalisations free); the impact of a group (``sim_stat``: the
``staterror`` parameters; each variation) is ``sqrt(total^2 - without^2)`` where
``without`` is the fit's uncertainty with that group fixed.

Toys (:func:`toy_pulls`) are drawn from the fitted model itself (``pdf.sample``: Poisson
main data and fluctuated constraint data), so the pull ``(SF_toy - SF_true) / sigma_toy``
over toys tests the quoted uncertainty's coverage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CHANNELS",
    "NORM_FACTORS",
    "BinFit",
    "PassFail",
    "ProbeJets",
    "Templates",
    "fit_bin",
    "fit_templates",
    "jet_weights",
    "pass_fail",
    "templates_in_bin",
    "toy_pulls",
    "workspace",
]

#: the categories of the fit, in pyhf's channel names
CHANNELS = ("pass", "fail")
#: the free normalisations of the fit
NORM_FACTORS = ("mu_signal_pass", "mu_signal_fail", "mu_background_pass", "mu_background_fail")
_SIGNAL, _BACKGROUND = "signal", "background"
_MC_STAT = "mc_stat"
#: the normalisations' range
_MU_BOUNDS = (0.0, 10.0)
#: relative step of the numerical gradient of the efficiency
_STEP = 1e-4
#: a normalisation this close to a bound: the Gaussian uncertainty does not hold there
_AT_BOUND = 1e-3


@dataclass(frozen=True)
class ProbeJets:
    """Probe jets: ``pt`` (GeV), the fitted observable ``x`` (the mass, GeV), whether the
    tagger passes, the event ``weight`` and, in simulation, ``signal`` (truth: a merged
    top). Pseudo-data have ``signal`` None."""

    pt: np.ndarray
    x: np.ndarray
    passed: np.ndarray
    weight: np.ndarray
    signal: np.ndarray | None = None

    def select(self, keep: np.ndarray) -> ProbeJets:
        """The probe jets where ``keep`` is true."""
        return ProbeJets(
            self.pt[keep],
            self.x[keep],
            self.passed[keep],
            self.weight[keep],
            None if self.signal is None else self.signal[keep],
        )

    def in_pt_bin(self, low: float, high: float) -> ProbeJets:
        """The probe jets with ``low <= pt < high``."""
        return self.select((self.pt >= low) & (self.pt < high))


@dataclass(frozen=True)
class PassFail:
    """Weighted histograms of one sample in the two categories: sums of weights and of
    squared weights per bin."""

    passed: np.ndarray
    failed: np.ndarray
    passed_w2: np.ndarray
    failed_w2: np.ndarray

    def scaled(self, k: float) -> PassFail:
        """The histograms times ``k`` (squared weights times ``k^2``)."""
        return PassFail(
            self.passed * k, self.failed * k, self.passed_w2 * k**2, self.failed_w2 * k**2
        )

    @property
    def efficiency(self) -> float:
        """The pass fraction of the weighted yield."""
        total = float(self.passed.sum() + self.failed.sum())
        return float(self.passed.sum()) / total if total > 0 else float("nan")

    def channel(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Sums of weights and of squared weights in channel ``name``."""
        return (self.passed, self.passed_w2) if name == "pass" else (self.failed, self.failed_w2)


def pass_fail(jets: ProbeJets, edges: np.ndarray) -> PassFail:
    """The pass / fail histograms of ``jets``' observable on ``edges`` (outside: dropped)."""
    hists = []
    for sel in (jets.passed, ~jets.passed):
        w = jets.weight[sel]
        hists.append(np.histogram(jets.x[sel], edges, weights=w)[0])
        hists.append(np.histogram(jets.x[sel], edges, weights=w * w)[0])
    return PassFail(hists[0], hists[2], hists[1], hists[3])


@dataclass(frozen=True)
class Templates:
    """The simulation of one pT bin: nominal ``signal`` and ``background`` histograms and,
    per systematic variation, its (up, down) pair of (signal, background)."""

    signal: PassFail
    background: PassFail
    variations: Mapping[str, tuple[tuple[PassFail, PassFail], tuple[PassFail, PassFail]]] = field(
        default_factory=dict
    )

    @property
    def eff_sim(self) -> float:
        """The nominal simulation's signal efficiency."""
        return self.signal.efficiency

    def total(self) -> float:
        """The nominal simulation's total weighted yield."""
        return float(sum(h.passed.sum() + h.failed.sum() for h in (self.signal, self.background)))

    def scaled(self, k: float) -> Templates:
        """Every histogram times ``k``."""
        return Templates(
            self.signal.scaled(k),
            self.background.scaled(k),
            {
                name: tuple((s.scaled(k), b.scaled(k)) for s, b in pair)  # type: ignore[misc]
                for name, pair in self.variations.items()
            },
        )


def _split(jets: ProbeJets, edges: np.ndarray) -> tuple[PassFail, PassFail]:
    if jets.signal is None:
        raise ValueError("simulated probe jets need their truth (signal)")
    return pass_fail(jets.select(jets.signal), edges), pass_fail(jets.select(~jets.signal), edges)


def _mirror(nominal: PassFail, up: PassFail) -> PassFail:
    """The down histogram of a one-sided variation: the up shift mirrored about nominal."""
    return PassFail(
        np.maximum(2 * nominal.passed - up.passed, 0.0),
        np.maximum(2 * nominal.failed - up.failed, 0.0),
        nominal.passed_w2,
        nominal.failed_w2,
    )


def templates_in_bin(
    sim: ProbeJets,
    variations: Mapping[str, tuple[ProbeJets, ProbeJets | None]],
    pt_bin: tuple[float, float],
    edges: np.ndarray,
) -> Templates:
    """The templates of one pT bin from the nominal simulation and each variation's
    (up, down) simulation (each selected in the bin by its own probe pT, so a jet-energy
    scale moves jets between bins); a one-sided variation (down None) is mirrored."""
    signal, background = _split(sim.in_pt_bin(*pt_bin), edges)
    pairs = {}
    for name, (up, down) in variations.items():
        hi = _split(up.in_pt_bin(*pt_bin), edges)
        lo = (
            (_mirror(signal, hi[0]), _mirror(background, hi[1]))
            if down is None
            else _split(down.in_pt_bin(*pt_bin), edges)
        )
        pairs[name] = (hi, lo)
    return Templates(signal, background, pairs)


def _sample(name: str, channel: str, t: Templates, norm: str, keep: np.ndarray) -> dict[str, Any]:
    index = 0 if name == _SIGNAL else 1
    nominal = (t.signal, t.background)[index]
    counts, _ = nominal.channel(channel)
    modifiers: list[dict[str, Any]] = [{"name": norm, "type": "normfactor", "data": None}]
    # staterror: the absolute uncertainty of each sample; pyhf adds them in quadrature
    w2 = nominal.channel(channel)[1]
    modifiers.append(
        {"name": f"{_MC_STAT}_{channel}", "type": "staterror", "data": np.sqrt(w2)[keep].tolist()}
    )
    for var, (up, down) in sorted(t.variations.items()):
        modifiers.append(
            {
                "name": var,
                "type": "histosys",
                "data": {
                    "hi_data": up[index].channel(channel)[0][keep].tolist(),
                    "lo_data": down[index].channel(channel)[0][keep].tolist(),
                },
            }
        )
    return {"name": name, "data": counts[keep].tolist(), "modifiers": modifiers}


def _kept_bins(t: Templates, channel: str) -> np.ndarray:
    """The bins where the nominal simulation has some yield (others cannot be fitted)."""
    return np.asarray((t.signal.channel(channel)[0] + t.background.channel(channel)[0]) > 0)


def workspace(t: Templates, data: PassFail) -> dict[str, Any]:
    """The pyhf workspace (JSON spec) of the fit of ``data`` with the templates ``t``;
    bins without simulated yield in a channel are left out of it (:class:`ValueError`
    when a channel has none), and so is a sample without yield in a channel (its
    normalisation there would be a flat direction)."""
    channels, observations, norms = [], [], []
    for channel in CHANNELS:
        keep = _kept_bins(t, channel)
        if not keep.any():
            raise ValueError(f"no simulated probe jet in the {channel} category")
        samples = []
        for name, nominal in ((_SIGNAL, t.signal), (_BACKGROUND, t.background)):
            if nominal.channel(channel)[0][keep].sum() > 0:  # else: no parameter to fit
                norms.append(f"mu_{name}_{channel}")
                samples.append(_sample(name, channel, t, norms[-1], keep))
        channels.append({"name": channel, "samples": samples})
        observations.append({"name": channel, "data": data.channel(channel)[0][keep].tolist()})
    parameters = [{"name": mu, "bounds": [list(_MU_BOUNDS)], "inits": [1.0]} for mu in norms]
    return {
        "version": "1.0.0",
        "channels": channels,
        "observations": observations,
        "measurements": [
            {"name": "scale_factor", "config": {"poi": norms[0], "parameters": parameters}}
        ],
    }


@dataclass(frozen=True)
class BinFit:
    """The fit of one pT bin: the data efficiency and the SF with their uncertainties,
    the breakdown (``data_stat``, ``sim_stat``, one entry per variation: absolute
    uncertainties of the SF), the best-fit parameters (by name), whether a normalisation
    ended at a bound of its range (its Gaussian uncertainty is then meaningless) and, for
    toys, the model and the best-fit vector."""

    eff_sim: float
    eff_data: float
    eff_data_err: float
    sf: float
    sf_err: float
    breakdown: dict[str, float]
    parameters: dict[str, float]
    at_bound: bool
    templates: Templates
    model: Any
    bestfit: np.ndarray


def _minuit() -> Any:
    import pyhf

    # the clipping of sample yields (module docstring) is announced as a warning per model,
    # and a failed minimisation logged whole before the exception the callers handle
    logging.getLogger("pyhf.pdf").setLevel(logging.ERROR)
    logging.getLogger("pyhf.optimize.mixins").setLevel(logging.CRITICAL)

    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0, maxiter=20000))
    return pyhf


def _efficiency_function(model: Any) -> Callable[[np.ndarray], float]:
    """``pars -> S_pass / (S_pass + S_fail)`` of the model's signal sample."""
    samples = list(model.config.samples)
    signal = samples.index(_SIGNAL)
    slices = model.config.channel_slices

    def eff(pars: np.ndarray) -> float:
        by_sample = np.asarray(model.main_model.expected_data(pars, return_by_sample=True))
        s_pass = float(by_sample[signal, slices["pass"]].sum())
        s_fail = float(by_sample[signal, slices["fail"]].sum())
        return s_pass / (s_pass + s_fail)

    return eff


def _gradient(f: Callable[[np.ndarray], float], pars: np.ndarray) -> np.ndarray:
    grad = np.zeros(pars.size)
    for i in range(pars.size):
        h = _STEP * max(abs(pars[i]), 1.0)
        up, down = pars.copy(), pars.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


def _fit(
    pyhf: Any, model: Any, data: np.ndarray, fixed: np.ndarray | None, init: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Best-fit parameters and their covariance (fixed parameters: zero rows). Where
    minuit's covariance is not accurate (MIGRAD's estimate only, or forced positive
    definite), HESSE computes it; if it still is not, :class:`FloatingPointError`."""
    fixed_params = None if fixed is None else fixed.tolist()
    result = pyhf.infer.mle.fit(
        data,
        model,
        init_pars=None if init is None else init.tolist(),
        fixed_params=fixed_params,
        return_result_obj=True,
    )[1]
    minuit = result.minuit
    if not minuit.fmin.has_accurate_covar or minuit.fmin.has_made_posdef_covar:
        minuit.hesse()
        if not minuit.fmin.has_accurate_covar or minuit.fmin.has_made_posdef_covar:
            raise FloatingPointError("the fit's covariance is not accurate")
    cov = np.asarray(minuit.covariance, dtype=float)
    if fixed is not None:
        cov = np.where(fixed[:, None] | fixed[None, :], 0.0, cov)
    return np.asarray(result.x, dtype=float), cov


def _groups(model: Any, variations: Sequence[str]) -> dict[str, np.ndarray]:
    """Parameter masks of the nuisance groups: ``sim_stat`` and each variation."""
    npars = model.config.npars
    groups: dict[str, np.ndarray] = {}
    for name in (_MC_STAT, *variations):
        mask = np.zeros(npars, dtype=bool)
        for par, sl in model.config.par_map.items():
            if par == name or (name == _MC_STAT and par.startswith(f"{_MC_STAT}_")):
                mask[sl["slice"]] = True
        if mask.any():
            groups["sim_stat" if name == _MC_STAT else name] = mask
    return groups


def _fixed_base(model: Any) -> np.ndarray:
    """pyhf's own fixed parameters (none here, but kept honest)."""
    return np.asarray(model.config.suggested_fixed(), dtype=bool)


def fit_templates(t: Templates, data: PassFail | np.ndarray, *, breakdown: bool = True) -> BinFit:
    """Fit ``data`` (histograms, or a toy's full pyhf data vector: main and constraint
    data) with the templates ``t`` (already normalised to the data: the normalisations
    start at 1)."""
    pyhf = _minuit()
    if isinstance(data, PassFail):
        ws = pyhf.Workspace(workspace(t, data))
        model = ws.model(clip_sample_data=0.0)
        observed = np.asarray(ws.data(model))
    else:
        empty = PassFail(*(np.zeros_like(t.signal.passed) for _ in range(4)))
        model = pyhf.Workspace(workspace(t, empty)).model(clip_sample_data=0.0)
        observed = np.asarray(data)
    base = _fixed_base(model)
    bestfit, cov = _fit(pyhf, model, observed, base if base.any() else None, None)
    eff = _efficiency_function(model)
    grad = _gradient(eff, bestfit)
    eff_data = eff(bestfit)
    err = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    eff_sim = t.eff_sim
    parts: dict[str, float] = {}
    if breakdown:
        norms = np.zeros(model.config.npars, dtype=bool)
        for mu in NORM_FACTORS:
            if mu in model.config.par_map:
                norms[model.config.par_map[mu]["slice"]] = True
        _, cov_stat = _fit(pyhf, model, observed, base | ~norms, bestfit)
        parts["data_stat"] = float(np.sqrt(max(grad @ cov_stat @ grad, 0.0))) / eff_sim
        for name, mask in _groups(model, sorted(t.variations)).items():
            _, cov_wo = _fit(pyhf, model, observed, base | mask, bestfit)
            without = float(grad @ cov_wo @ grad)
            parts[name] = float(np.sqrt(max(err**2 - without, 0.0))) / eff_sim
    names = {}
    for par, sl in model.config.par_map.items():
        values = bestfit[sl["slice"]]
        names[par] = float(values[0]) if values.size == 1 else float(np.mean(values))
    return BinFit(
        eff_sim=eff_sim,
        eff_data=eff_data,
        eff_data_err=err,
        sf=eff_data / eff_sim,
        sf_err=err / eff_sim,
        breakdown=parts,
        parameters=names,
        at_bound=any(
            min(abs(names[mu] - _MU_BOUNDS[0]), abs(names[mu] - _MU_BOUNDS[1])) < _AT_BOUND
            for mu in NORM_FACTORS
            if mu in names
        ),
        templates=t,
        model=model,
        bestfit=bestfit,
    )


def fit_bin(
    sim: Templates, data: ProbeJets, edges: np.ndarray, *, breakdown: bool = True
) -> BinFit:
    """Fit the data probe jets of one pT bin: the simulation is first normalised to the
    data's total yield, so the fitted normalisations are near 1."""
    observed = pass_fail(data, edges)
    n_data = float(observed.passed.sum() + observed.failed.sum())
    total = sim.total()
    if n_data <= 0 or total <= 0:
        raise ValueError("a pT bin without data or simulation cannot be fitted")
    return fit_templates(sim.scaled(n_data / total), observed, breakdown=breakdown)


def toy_pulls(result: BinFit, n_toys: int, seed: int) -> np.ndarray:
    """Pulls ``(SF_toy - SF) / sigma_toy`` of ``n_toys`` toys drawn from the fitted model;
    toys whose fit fails or ends with a normalisation at a bound are dropped. pyhf's numpy
    backend samples from numpy's global generator: it is seeded with ``seed`` for the draw
    and given its state back after."""
    pyhf = _minuit()
    pdf = result.model.make_pdf(pyhf.tensorlib.astensor(result.bestfit))
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(seed)  # noqa: NPY002 (the generator pyhf draws from)
        toys = np.asarray(pdf.sample((n_toys,)))
    finally:
        np.random.set_state(state)  # noqa: NPY002
    pulls = []
    for toy in toys:
        try:
            fit = fit_templates(result.templates, toy, breakdown=False)
        except (pyhf.exceptions.FailedMinimization, FloatingPointError):  # a failed fit
            continue
        if fit.sf_err > 0 and not fit.at_bound:
            pulls.append((fit.sf - result.sf) / fit.sf_err)
    return np.asarray(pulls)


def jet_weights(
    pt: np.ndarray,
    passed: np.ndarray,
    pt_edges: Sequence[float],
    sf: Sequence[float],
    sf_err: Sequence[float],
    eff_sim: Sequence[float],
) -> dict[str, np.ndarray]:
    """Per-jet weights that apply the scale factors to simulated signal jets: a jet
    passing the working point in pT bin i gets ``SF_i``, a failing one
    ``(1 - SF_i eff_i) / (1 - eff_i)`` (so the bin's yield is kept; 0 where ``SF_i eff_i``
    exceeds 1), with ``SF_i +- err``
    for the ``_up`` / ``_down`` columns; jets outside the bins get 1. Returns
    ``sf_weight``, ``sf_weight_up``, ``sf_weight_down``."""
    edges = np.asarray(pt_edges, dtype=float)
    index = np.searchsorted(edges, pt, side="right") - 1
    inside = (index >= 0) & (index < edges.size - 1)
    i = np.where(inside, index, 0)
    eff = np.asarray(eff_sim, dtype=float)[i]
    out = {}
    for name, sign in (("sf_weight", 0.0), ("sf_weight_up", 1.0), ("sf_weight_down", -1.0)):
        s = np.asarray(sf, dtype=float)[i] + sign * np.asarray(sf_err, dtype=float)[i]
        fail = np.where(eff < 1, (1 - s * eff) / np.where(eff < 1, 1 - eff, 1.0), 1.0)
        fail = np.maximum(fail, 0.0)  # SF x eff above 1: no failing jet is left
        w = np.where(passed, s, fail)
        out[name] = np.where(inside, w, 1.0).astype(np.float32)
    return out
