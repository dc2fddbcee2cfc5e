"""The ak4-flavour sample's decays and detector (docs/flavour.md): K0S / Lambda decay in
flight only there, tracks from displaced origins lose efficiency with production radius,
impact parameters have non-Gaussian tails; the other samples keep the detector and the
decays they had."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from heptagon.generate.detector import DetectorConfig, Particles, apply_detector
from heptagon.generate.options import GenerateOptions
from heptagon.generate.processes import get_process
from heptagon.generate.run import (
    COMMON_SETTINGS,
    FLAVOUR_DECAY_SETTINGS,
    FLAVOUR_DETECTOR,
    _plan,
    pythia_settings,
)

N = 40000


def pions(n: int, radius: float, seed: int = 1) -> Particles:
    """``n`` central 5 GeV pions produced at transverse radius ``radius`` (mm) along their
    own direction (a V0 daughter flying outwards)."""
    rs = np.random.default_rng(seed)
    phi = rs.uniform(-np.pi, np.pi, n)
    pt = np.full(n, 5.0)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), np.zeros(n)
    return Particles(
        counts=np.array([n]),
        px=px,
        py=py,
        pz=pz,
        e=np.sqrt(pt**2 + 0.13957**2),
        pid=np.full(n, 211),
        vx=radius * np.cos(phi),
        vy=radius * np.sin(phi),
        vz=np.zeros(n),
    )


def tracked(cfg: DetectorConfig, radius: float) -> float:
    c = apply_detector(pions(N, radius), cfg, np.random.default_rng(2))
    return float(np.sum(c.charge != 0) / N)


def test_flavour_classes_alone_decay_k0s_and_lambda() -> None:
    for cls in ("b", "c", "uds", "g_ak4"):
        settings = pythia_settings(get_process(cls), 30.0, True, 1)
        # the flavour decays come after the common ones (Pythia: the last setting wins)
        assert settings.index(FLAVOUR_DECAY_SETTINGS[0]) > settings.index(COMMON_SETTINGS[-1])
    for cls in ("QCD", "Tbqq", "q"):
        settings = pythia_settings(get_process(cls), 500.0, False, 1)
        assert not set(FLAVOUR_DECAY_SETTINGS) & set(settings)
        assert "ParticleDecays:tau0Max = 10" in settings


def test_only_the_flavour_sample_gets_the_displaced_tracking(tmp_path: Path) -> None:
    flav = _plan(GenerateOptions(sample="ak4-flavour", jets=10, seed=1, out=tmp_path / "a"))[1]
    top = _plan(GenerateOptions(sample="top-vs-qcd", jets=10, seed=1, out=tmp_path / "b"))[1]
    assert {k: flav["detector"][k] for k in FLAVOUR_DETECTOR} == FLAVOUR_DETECTOR
    # the other samples' settings are those from before the fields existed (they resume)
    assert top["detector"] == DetectorConfig().model_dump(exclude=set(FLAVOUR_DETECTOR))
    assert DetectorConfig(**top["detector"]) == DetectorConfig()
    assert DetectorConfig().ip_tail_fraction == 0.0
    assert DetectorConfig().displaced_track_rmax is None
    # the recorded settings survive JSON (a sample resumes), off or on
    for cfg in (DetectorConfig(), DetectorConfig(**FLAVOUR_DETECTOR)):
        assert DetectorConfig(**json.loads(json.dumps(cfg.settings()))) == cfg


def test_tracking_efficiency_falls_with_production_radius() -> None:
    cfg = DetectorConfig(displaced_track_rmax=600.0)
    prompt = tracked(cfg, 0.0)
    assert prompt == pytest.approx(0.95, abs=0.005)
    # linear in r: 1 - r / 600 mm of the prompt efficiency, none beyond 600 mm
    assert tracked(cfg, 150.0) == pytest.approx(0.75 * 0.95, abs=0.01)
    assert tracked(cfg, 300.0) == pytest.approx(0.5 * 0.95, abs=0.01)
    assert tracked(cfg, 700.0) == 0.0
    # the default detector does not depend on where a track was produced
    assert tracked(DetectorConfig(), 300.0) == pytest.approx(prompt, abs=0.005)


def test_impact_parameters_have_the_configured_tails() -> None:
    core = apply_detector(pions(N, 0.0), DetectorConfig(), np.random.default_rng(3))
    cfg = DetectorConfig(ip_tail_fraction=0.03, ip_tail_scale=3.0)
    tails = apply_detector(pions(N, 0.0), cfg, np.random.default_rng(3))
    for c in (core, tails):
        assert np.all(c.d0err[c.charge != 0] > 0)
    pull_core = core.d0[core.charge != 0] / core.d0err[core.charge != 0]
    pull = tails.d0[tails.charge != 0] / tails.d0err[tails.charge != 0]
    # prompt tracks beyond 3 sigma: 0.27% for a Gaussian; 0.97 * 0.27% + 0.03 * 31.7% = 1.2%
    assert np.mean(np.abs(pull_core) > 3) == pytest.approx(0.0027, abs=0.001)
    assert np.mean(np.abs(pull) > 3) == pytest.approx(0.0122, abs=0.0015)
    # the core keeps its width (median |pull| of a unit Gaussian: 0.674); errors unchanged
    assert np.median(np.abs(pull)) == pytest.approx(0.674 * 1.0 + 0.02, abs=0.02)
    np.testing.assert_array_equal(tails.d0err[tails.charge != 0], core.d0err[core.charge != 0])
