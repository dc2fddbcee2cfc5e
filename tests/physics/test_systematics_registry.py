"""The registry of named systematic variations."""

from __future__ import annotations

import pytest

from heptagon.errors import ConfigError
from heptagon.generate.detector import DetectorConfig
from heptagon.physics.systematics import (
    VARIATIONS,
    get_variation,
    shower_weight_settings,
    weight_variations,
)


def test_the_issue_names_are_all_there_with_their_kind() -> None:
    components = ("track", "ecal", "hcal")
    shape = [f"{k}_{c}_{d}" for k in ("jes", "jer") for c in components for d in ("up", "down")]
    shape += ["trk_eff_down", "ip_res_up", "pileup_up", "pileup_down"]
    assert {n: VARIATIONS[n].kind for n in shape} == dict.fromkeys(shape, "shape")
    assert [v.name for v in weight_variations()] == ["isr_up", "isr_down", "fsr_up", "fsr_down"]
    assert VARIATIONS["tune_a14"].kind == "generator"
    assert all(v.source and v.size for v in VARIATIONS.values())


def test_detector_variations_are_valid_knobs_in_the_right_direction() -> None:
    nominal = DetectorConfig()
    for v in VARIATIONS.values():
        if not v.detector:
            continue
        varied = DetectorConfig(**v.detector)  # extra="forbid": a typo would fail here
        ((knob, value),) = v.detector.items()
        assert value != getattr(nominal, knob)
        worse = knob.startswith(("jer", "ip_res")) or knob == "track_eff_scale"
        higher = value > getattr(nominal, knob)
        if v.direction == "up" and not worse:
            assert higher, v.name
        if v.direction == "down" and not worse:
            assert not higher, v.name
        assert varied != nominal
    assert VARIATIONS["trk_eff_down"].detector["track_eff_scale"] < 1
    assert VARIATIONS["ip_res_up"].detector["ip_res_scale"] > 1


def test_pileup_and_shower_variations() -> None:
    assert get_variation("pileup_up").pileup_scale == pytest.approx(1.046)
    assert get_variation("pileup_down").pileup_scale == pytest.approx(0.954)
    # "up" = more radiation = a lower renormalisation scale
    assert get_variation("isr_up").shower == "isr:muRfac=0.5"
    assert get_variation("fsr_down").shower == "fsr:muRfac=2"
    assert get_variation("fsr_up").column == "weight_fsr_up"
    assert get_variation("jes_ecal_up").column is None
    doc, entries = shower_weight_settings()
    assert doc == "UncertaintyBands:doVariations = on"
    assert "isr_up isr:muRfac=0.5" in entries


def test_unknown_variation_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown variation 'jes_up'.*jes_ecal_up"):
        get_variation("jes_up")
