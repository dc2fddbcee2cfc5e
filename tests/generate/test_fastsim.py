"""The fast detector chain: same generator events as the full one, jets matchable at
generator level, a measurably different (and simpler) response."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from heptagon.artifacts.manifest import JetManifest, load_manifest
from heptagon.errors import ConfigError
from heptagon.generate.detector import DetectorConfig, Particles, apply_detector
from heptagon.generate.fastsim import (
    _TABLE_IDS,
    GEN_BRANCHES,
    FastDetectorConfig,
    _pdg_look_up,
    fast_response,
)
from heptagon.generate.run import FLAVOUR_DETECTOR, GenerateOptions, generate
from heptagon.physics.kinematics import delta_r
from heptagon.physics.pdg import (
    CAT_CHARGED_HADRON,
    CAT_ELECTRON,
    CAT_MUON,
    CAT_NEUTRAL_HADRON,
    CAT_PHOTON,
    categories,
    charges,
)

N = 20000
FAST = FastDetectorConfig()


def make(pid: list[int], pt: float, eta: object, phi: object, mass: float = 0.0) -> Particles:
    """Particles of one event from (pT, eta, phi), produced at the origin."""
    n = len(pid)
    eta_a, phi_a = (np.broadcast_to(np.asarray(x, float), (n,)) for x in (eta, phi))
    px, py, pz = pt * np.cos(phi_a), pt * np.sin(phi_a), pt * np.sinh(eta_a)
    zeros = np.zeros(n)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    pids = np.asarray(pid, dtype=np.int64)
    return Particles(np.array([n]), px, py, pz, e, pids, zeros, zeros, zeros)


def _columns(sample: Path) -> dict[str, np.ndarray]:
    cols = ("event", "jet_pt", "jet_eta", *GEN_BRANCHES)
    tables = [pq.read_table(f, columns=list(cols)) for f in sorted(sample.glob("shards/*.parquet"))]
    shard = np.concatenate([np.full(t.num_rows, i) for i, t in enumerate(tables)])
    out = {c: np.concatenate([t[c].to_numpy() for t in tables]) for c in cols}
    return out | {"shard": shard}


def test_paired_samples_share_generator_events_and_jets(paired_samples: dict[str, Path]) -> None:
    full, fast = (_columns(paired_samples[c]) for c in ("full", "fast"))
    manifests = {c: load_manifest(paired_samples[c]) for c in ("full", "fast")}
    assert isinstance(manifests["fast"], JetManifest)
    assert isinstance(manifests["full"], JetManifest)
    assert (manifests["full"].detector_chain, manifests["fast"].detector_chain) == ("full", "fast")
    assert FastDetectorConfig(**manifests["fast"].detector or {}) == FAST
    # the full chain of ak4-flavour: displaced-track efficiency and IP tails on
    assert DetectorConfig(**manifests["full"].detector or {}) == DetectorConfig(**FLAVOUR_DETECTOR)

    # the same generator jet (same shard, event, pT) in both chains: identical axes
    def by_gen_jet(cols: dict[str, np.ndarray]) -> dict[tuple[int, int, float], float]:
        keys = zip(cols["shard"], cols["event"], cols["jet_gen_pt"], strict=True)
        return {k: eta for k, eta in zip(keys, cols["jet_gen_eta"], strict=True) if k[2] > 0}

    gen_full, gen_fast = by_gen_jet(full), by_gen_jet(fast)
    paired = [(gen_full[k], eta) for k, eta in gen_fast.items() if k in gen_full]
    assert len(paired) >= 0.7 * len(fast["event"])
    assert all(a == b for a, b in paired)
    # every matched generator jet lies within dR < 0.2 of its reconstructed jet
    for cols in (full, fast):
        has = cols["jet_gen_pt"] > 0
        assert has.mean() > 0.9
        assert np.all(np.abs(cols["jet_gen_eta"][has] - cols["jet_eta"][has]) < 0.2)


def test_fast_impact_parameter_resolution_differs_from_full() -> None:
    """A 1 GeV central pion from the origin: full sigma(d0) = sqrt(0.01^2 + 0.1^2) mm
    (multiple scattering), fast the constant 0.03 mm."""
    phi = np.random.default_rng(1).uniform(-np.pi, np.pi, N)
    p = make([211] * N, 1.0, 0.3, phi, mass=0.1396)
    rng = np.random.default_rng(2)
    widths = {}
    for name, c in (
        ("full", apply_detector(p, DetectorConfig(), rng)),
        ("fast", fast_response(p, FAST, rng)),
    ):
        d0 = c.d0[c.charge != 0]
        widths[name] = float(np.std(d0))
    assert widths["full"] == pytest.approx(np.hypot(0.010, 0.100), rel=0.03)
    assert widths["fast"] == pytest.approx(FAST.d0_res, rel=0.03)


def test_fast_efficiency_is_flat_and_neutrals_are_not_showered() -> None:
    phi = np.random.default_rng(3).uniform(-np.pi, np.pi, N)
    for pt, eta in ((0.5, 0.5), (5.0, 2.0)):  # full: 0.70 and 0.85
        c = fast_response(
            make([211] * N, pt, eta, phi, mass=0.1396), FAST, np.random.default_rng(4)
        )
        assert np.sum(c.charge != 0) / N == pytest.approx(FAST.track_eff, abs=4 * np.sqrt(0.09 / N))
    # two photons 0.003 apart and a neutral hadron: one candidate each (full: one ECAL
    # tower for both photons)
    p = make([22, 22, 130], 20.0, [0.100, 0.103, 0.101], 0.2)
    c = fast_response(p, FAST, np.random.default_rng(5))
    assert sorted(c.category.tolist()) == [CAT_NEUTRAL_HADRON, CAT_PHOTON, CAT_PHOTON]
    assert np.allclose(np.arctan2(c.py, c.px), 0.2)
    assert len(apply_detector(p, DetectorConfig(), np.random.default_rng(5)).e) == 2


def test_fast_energy_resolution_is_its_parametrisation() -> None:
    e = 50.0
    p = make([130] * N, e, 0.0, 0.0)
    c = fast_response(p, FAST, np.random.default_rng(6))
    expected = e * np.sqrt(FAST.had_c**2 + FAST.had_s**2 / e)
    assert np.std(c.e) == pytest.approx(expected, rel=0.03)
    assert np.mean(c.e) == pytest.approx(e, rel=0.01)


def test_charge_table_equals_the_pdg_charges() -> None:
    every = np.arange(-_TABLE_IDS, _TABLE_IDS)  # every id in the table
    mixed = np.array([211, -2212, 1000010020, -1000020040, 5122, 22])  # some beyond it
    for pid in (every, mixed):
        assert np.array_equal(_pdg_look_up(pid)[1] / 3.0, charges(pid))


def test_fast_candidate_types_and_charges() -> None:
    """Every particle type once, central, 20 GeV, all charged ones tracked: tracks keep
    their charge and type; an untracked muon (outside the tracker) and neutrinos give
    nothing; photons, neutral hadrons and a forward (untracked) pion are neutral."""
    pid = [11, -11, 13, -13, 211, -321, 2212, 22, 130, 2112, 12, -14, 13, -211]
    eta = [0.1] * 12 + [2.8, 2.8]  # the last two outside the tracker, inside the calo
    p = make(pid, 20.0, eta, np.linspace(-3, 3, len(pid)), mass=0.0)
    c = fast_response(p, FastDetectorConfig(track_eff=1.0), np.random.default_rng(7))
    tracks = np.flatnonzero(c.charge != 0)
    assert c.e.size == len(pid) - 3  # two neutrinos, one untracked muon
    assert c.charge[tracks].tolist() == [-1, 1, -1, 1, 1, -1, 1]
    tracked_pid = np.array(pid[:7])
    assert np.array_equal(c.category[tracks], categories(tracked_pid, charges(tracked_pid)))
    assert c.category[tracks].tolist()[:4] == [CAT_ELECTRON, CAT_ELECTRON, CAT_MUON, CAT_MUON]
    assert c.category[tracks][4] == CAT_CHARGED_HADRON
    neutral = np.setdiff1d(np.arange(c.e.size), tracks)
    assert c.category[neutral].tolist() == [CAT_PHOTON] + [CAT_NEUTRAL_HADRON] * 3
    assert np.all(c.d0err[neutral] == 0)
    assert np.all(c.d0err[tracks] == FAST.d0_res)
    # tracks keep their mass (0 here): E = |p| within rounding; p scaled by < 5 sigma
    p_abs = np.sqrt(c.px**2 + c.py**2 + c.pz**2)
    assert np.allclose(c.e, p_abs)
    assert np.all(np.abs(p_abs[tracks] / (20.0 * np.cosh(0.1)) - 1) < 5 * FAST.track_res)
    assert c.counts.tolist() == [c.e.size]


def test_fast_refuses_pileup_and_the_forward_region(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--pileup needs --detector full"):
        GenerateOptions(sample="uds", jets=5, seed=1, out=tmp_path, detector="fast", pileup=10)
    opts = GenerateOptions(
        sample="uds", jets=5, seed=1, out=tmp_path / "x", detector="fast", eta_max=2.5
    )
    with pytest.raises(ConfigError, match="no forward calorimeter"):
        generate(opts, show_progress=False)  # R = 0.8 (the one-class default) + 2.5 > 3


def test_manifest_without_a_chain_reads_as_full(paired_samples: dict[str, Path]) -> None:
    data = load_manifest(paired_samples["full"]).to_json()
    data.pop("detector_chain")
    assert JetManifest.model_validate(data).detector_chain == "full"


def test_gen_match_is_within_radius(paired_samples: dict[str, Path]) -> None:
    cols = _columns(paired_samples["fast"])
    t = pq.read_table(sorted(paired_samples["fast"].glob("shards/*.parquet"))[0])
    has = t["jet_gen_pt"].to_numpy() > 0
    dr = delta_r(
        t["jet_eta"].to_numpy()[has],
        t["jet_phi"].to_numpy()[has],
        t["jet_gen_eta"].to_numpy()[has],
        t["jet_gen_phi"].to_numpy()[has],
    )
    assert dr.max() < 0.2
    assert len(cols["event"]) == 80
