"""Building blocks of benchmarks/refinement.py (the benchmark itself is too long for the
suite): the per-bin efficiency criteria and the agreement counts on hand-made jets."""

from __future__ import annotations

import numpy as np
import pytest
import refinement as bench  # benchmarks/ is on pytest's pythonpath

from heptagon.apps.refine.jets import Jets


def test_efficiency_bin_criteria() -> None:
    rng = np.random.default_rng(0)
    full = rng.random(400) < 0.5
    fast = full.copy()
    fast[np.flatnonzero(full)[:60]] = False  # 60 of ~200 passing jets lost: 15% lower
    e = bench._efficiency_bin(full, fast, full.copy(), np.random.default_rng(1))
    assert e["full"] == pytest.approx(full.mean())
    assert e["full_err"] == pytest.approx(np.sqrt(e["full"] * (1 - e["full"]) / 400))
    assert e["fast"] == pytest.approx(e["full"] - 60 / 400)
    assert e["fast_off"]
    assert e["fast_significant"]
    assert e["z_fast"] < -2
    # the refined value equal to FullSim's on every jet: within, consistent, z = 0
    assert e["refined_within"]
    assert e["refined_consistent"]
    assert e["z_refined"] == 0.0
    # one jet of 400 flipped: within FullSim's error, not significant
    one = full.copy()
    one[np.flatnonzero(full)[0]] = False
    e = bench._efficiency_bin(full, one, one, np.random.default_rng(1))
    assert not e["fast_off"]
    assert not e["fast_significant"]


def test_agreement_counts_points_and_names_what_is_left() -> None:
    rng = np.random.default_rng(2)
    n = 800
    flavour = np.repeat(np.arange(4), n // 4)  # b, c, uds, g
    values = rng.random((n, 4)) * 0.5 + 0.25 * (flavour[:, None] < 2)  # heavy higher
    full = Jets(
        event=np.arange(n), gen_pt=np.full(n, 40.0), gen_eta=np.zeros(n),
        gen_phi=np.zeros(n), flavour=flavour, values=values,
    )  # fmt: skip
    fast = values.copy()
    fast[flavour == 0] -= 0.2  # b jets' discriminants too low in "FastSim"
    ag = bench.agreement(full, fast, values.copy())
    assert ag["efficiency_points"] == 4 * 4  # 4 flavours x 1 pT bin x 4 working points
    assert ag["refined_within_error_all_points"] == 16  # refined = FullSim
    assert ag["refined_significantly_off"] == 0
    assert ag["fast_significantly_off"] >= 1
    assert ag["of_which_refined_consistent"] == ag["fast_significantly_off"]
    assert ag["of_which_refined_within_error"] == ag["efficiency_bins_fast_off"]
    assert ag["not_brought_back"] == {"issue": [], "statistical": [], "refined_significant": []}
    # the refinement left as FastSim: every off point is named as left
    same = bench.agreement(full, fast, fast)
    assert len(same["not_brought_back"]["issue"]) == same["efficiency_bins_fast_off"] > 0
    assert all(w.startswith("b 30-50 GeV") for w in same["not_brought_back"]["statistical"])
