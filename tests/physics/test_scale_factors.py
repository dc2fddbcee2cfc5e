"""The pass/fail template fit of heptagon.physics.scale_factors on synthetic probe jets
(a top-mass peak for signal, a W peak plus a flat continuum for background), so that the
truth of each test is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.physics.scale_factors import (
    ProbeJets,
    fit_bin,
    pass_fail,
    templates_in_bin,
    toy_pulls,
    workspace,
)

EDGES = np.linspace(40.0, 250.0, 15)
PT_BIN = (300.0, 800.0)


def probes(
    n: int, seed: int, *, eff: float = 0.6, scale: float = 1.0, truth: bool = True
) -> ProbeJets:
    """``n`` probe jets: half merged tops (pass with probability ``eff``), half
    background (mistag 10%, 20% above 140 GeV); masses times ``scale``."""
    rng = np.random.default_rng(seed)
    signal = rng.random(n) < 0.5
    w_peak = rng.random(n) < 0.5
    mass = np.where(
        signal,
        rng.normal(172.0, 15.0, n),
        np.where(w_peak, rng.normal(82.0, 10.0, n), rng.uniform(20.0, 250.0, n)),
    )
    mass = mass * scale
    passed = np.where(signal, rng.random(n) < eff, rng.random(n) < 0.1 + 0.1 * (mass > 140))
    return ProbeJets(rng.uniform(*PT_BIN, n), mass, passed, np.ones(n), signal if truth else None)


def _templates(sim: ProbeJets, variations: bool = True):  # type: ignore[no-untyped-def]
    v = {"jes": (probes(20000, 1, scale=1.03), probes(20000, 1, scale=0.97))} if variations else {}
    return templates_in_bin(sim, v, PT_BIN, EDGES)


def test_identical_pseudo_data_gives_sf_one_within_statistics() -> None:
    sim = probes(20000, 1)
    data = probes(4000, 2, truth=False)  # the same simulation, an independent sample
    fit = fit_bin(_templates(sim), data, EDGES)
    assert fit.sf_err > 0
    assert abs(fit.sf - 1.0) < 3 * fit.sf_err
    # the uncertainty is of the size of the data's binomial error on the efficiency
    binomial = np.sqrt(0.6 * 0.4 / 2000) / 0.6
    assert 0.5 * binomial < fit.sf_err < 3 * binomial


def test_asimov_data_give_sf_exactly_one() -> None:
    sim = probes(20000, 1)
    t = _templates(sim, variations=False)
    data = ProbeJets(sim.pt, sim.x, sim.passed, sim.weight)  # the templates themselves
    fit = fit_bin(t, data, EDGES)
    assert fit.sf == pytest.approx(1.0, abs=2e-3)


def test_an_injected_efficiency_shift_is_recovered() -> None:
    sim = probes(20000, 1)
    data = probes(4000, 3, eff=0.45, truth=False)
    fit = fit_bin(_templates(sim), data, EDGES)
    true_sf = 0.45 / sim.select(sim.signal).passed.mean()  # type: ignore[arg-type]
    assert abs(fit.sf - true_sf) < 3 * fit.sf_err
    assert fit.sf < 1 - 3 * fit.sf_err  # a real shift, not a fluctuation of 1


def test_breakdown_adds_up_and_a_shape_systematic_matters() -> None:
    sim = probes(20000, 1)
    data = probes(4000, 2, scale=1.03, truth=False)  # data on the 'jes up' scale
    fit = fit_bin(_templates(sim), data, EDGES)
    parts = fit.breakdown
    assert set(parts) == {"data_stat", "sim_stat", "jes"}
    assert parts["data_stat"] <= fit.sf_err + 1e-9
    assert parts["jes"] > 0
    # the jes nuisance parameter is pulled towards +1 by data on the up scale
    assert fit.parameters["jes"] > 0.5


def test_workspace_is_a_valid_pyhf_spec_without_empty_bins() -> None:
    import pyhf

    sim = probes(2000, 1)
    t = _templates(sim, variations=False)
    spec = workspace(t, pass_fail(sim, EDGES))
    model = pyhf.Workspace(spec).model()  # validates the spec against pyhf's schema
    assert set(model.config.channels) == {"pass", "fail"}
    for channel in spec["channels"]:
        counts = np.sum([s["data"] for s in channel["samples"]], axis=0)
        assert (counts > 0).all()


def test_toy_pulls_cover() -> None:
    sim = probes(20000, 1)
    fit = fit_bin(_templates(sim, variations=False), probes(4000, 2, truth=False), EDGES)
    pulls = toy_pulls(fit, 40, seed=5)
    assert pulls.size >= 38
    assert abs(pulls.mean()) < 0.5
    assert 0.6 < pulls.std() < 1.4


def test_simulation_without_truth_is_refused() -> None:
    with pytest.raises(ValueError, match="truth"):
        templates_in_bin(probes(100, 1, truth=False), {}, PT_BIN, EDGES)


def test_one_sided_variation_is_mirrored() -> None:
    sim = probes(5000, 1)
    t = templates_in_bin(sim, {"trk": (probes(5000, 1, scale=1.05), None)}, PT_BIN, EDGES)
    (up_s, _), (down_s, _) = t.variations["trk"]
    assert np.allclose(down_s.passed, np.maximum(2 * t.signal.passed - up_s.passed, 0))
    assert not np.allclose(up_s.passed, t.signal.passed)


def test_jet_weights_keep_the_bin_yield_and_move_with_the_uncertainty() -> None:
    from heptagon.physics.scale_factors import jet_weights

    rng = np.random.default_rng(4)
    pt = rng.uniform(250, 1200, 20000)
    passed = rng.random(pt.size) < 0.6
    w = jet_weights(pt, passed, [300, 500, 1000], [0.9, 1.1], [0.05, 0.1], [0.6, 0.6])
    low = (pt >= 300) & (pt < 500)
    assert np.allclose(w["sf_weight"][low & passed], 0.9)
    assert np.allclose(w["sf_weight_up"][low & passed], 0.95)
    assert np.allclose(w["sf_weight_down"][low & passed], 0.85)
    assert np.allclose(w["sf_weight"][low & ~passed], (1 - 0.9 * 0.6) / 0.4)
    outside = (pt < 300) | (pt >= 1000)
    assert np.all(w["sf_weight"][outside] == 1)
    # the weighted yield of a bin is kept; its weighted efficiency is SF x eff
    assert w["sf_weight"][low].sum() == pytest.approx(low.sum(), rel=0.02)
    eff_w = w["sf_weight"][low & passed].sum() / w["sf_weight"][low].sum()
    assert eff_w == pytest.approx(0.9 * passed[low].mean(), rel=0.03)


def test_a_bin_without_simulated_passing_jets_is_refused() -> None:
    sim = probes(2000, 1)
    never = ProbeJets(sim.pt, sim.x, np.zeros(sim.pt.size, dtype=bool), sim.weight, sim.signal)
    with pytest.raises(ValueError, match="pass category"):
        fit_bin(templates_in_bin(never, {}, PT_BIN, EDGES), probes(100, 2, truth=False), EDGES)


def test_a_normalisation_at_its_bound_is_flagged() -> None:
    sim = probes(20000, 1)
    t = _templates(sim, variations=False)
    assert not fit_bin(t, probes(4000, 2, truth=False), EDGES, breakdown=False).at_bound
    # every data top passes: the signal's fail normalisation runs to 0
    fit = fit_bin(t, probes(4000, 2, eff=1.0, truth=False), EDGES, breakdown=False)
    assert fit.parameters["mu_signal_fail"] < 1e-2
    assert fit.at_bound
