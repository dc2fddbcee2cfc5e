"""The X -> bb mass scan of the catalogue (for parameterised networks)."""

from __future__ import annotations

from heptagon.generate.processes import XBB_MASSES, get_process, get_sample_set


def test_xbb_scan_sets_the_scalar_mass() -> None:
    sample = get_sample_set("xbb-scan")
    assert sample.classes == tuple(f"Xbb{m}" for m in XBB_MASSES)
    assert len(XBB_MASSES) >= 4
    for mass in XBB_MASSES:
        process = get_process(f"Xbb{mass}")
        assert f"25:m0 = {mass}" in process.settings
        assert "25:onIfMatch = 5 -5" in process.settings
        lo, hi = (float(s.split("=")[1]) for s in process.settings if "25:mM" in s)
        assert lo < mass < hi
        assert process.truth.pdg == 25
    assert get_sample_set("w-vs-qcd").classes == ("Wqq", "QCD")
