"""`heptagon generate-events --pileup`: PUPPI MET, lepton isolation under pile-up, options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heptagon.config import validate
from heptagon.errors import ConfigError
from heptagon.generate.detector import DetectorConfig, Particles
from heptagon.generate.events import (
    BTagConfig,
    EventOptions,
    LeptonConfig,
    PileupSetup,
    missing_pt,
    reconstruct,
)
from heptagon.generate.jets import JetSelection
from heptagon.generate.pileup import (
    concat_particles,
    detector_library,
    process_settings,
    pythia_final_state,
)
from heptagon.generate.pileup import reconstruct as pileup_reconstruct
from heptagon.generate.run import make_pythia
from heptagon.generate.truth import EventRecord

JETS = JetSelection(radius=0.4, pt_min=25.0, pt_max=np.inf, eta_max=2.5)


@pytest.fixture(scope="module")
def dy_and_library() -> tuple[EventRecord, PileupSetup]:
    """40 Drell-Yan (Z -> ee / mumu) events and a 150-event minimum-bias library."""
    pythia = make_pythia(process_settings("dy", 5))
    record = EventRecord.from_batch(pythia.nextBatch(40).prt)
    minbias = concat_particles(pythia_final_state(process_settings("minbias", 6), 150))
    library = detector_library(minbias, DetectorConfig(), np.random.default_rng(1))
    return record, PileupSetup(library, 60.0, "none")


def _reco(record: EventRecord, pileup: PileupSetup | None, seed: int = 7) -> dict:
    return reconstruct(
        record,
        DetectorConfig(),
        JETS,
        LeptonConfig(),
        BTagConfig(),
        np.random.default_rng(seed),
        pileup,
    )


def _recoil_toy(n_events: int, rng: np.random.Generator) -> tuple[Particles, np.ndarray]:
    """Z -> nunu-like toy events from the origin: a 100-200 GeV jet (charged pions,
    photons, K0L) at |eta| < 1.5 recoiling against a neutrino; and the neutrinos'
    (px, py), the true MET."""
    pid = np.array([211, -211] * 5 + [22] * 4 + [130] * 2 + [12])
    k = pid.size
    jet_pt = rng.uniform(100.0, 200.0, n_events)
    share = rng.dirichlet(np.ones(k - 1), n_events)  # the jet's pT among its particles
    eta0, phi0 = rng.uniform(-1.5, 1.5, n_events), rng.uniform(-np.pi, np.pi, n_events)
    pt = np.column_stack([share * jet_pt[:, None], jet_pt])
    eta = np.column_stack([eta0[:, None] + rng.normal(0, 0.05, (n_events, k - 1)), eta0])
    phi = np.column_stack([phi0[:, None] + rng.normal(0, 0.05, (n_events, k - 1)), phi0 + np.pi])
    mass = np.where(np.abs(pid) == 211, 0.13957, np.where(pid == 130, 0.4976, 0.0))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    zeros = np.zeros(pt.size)
    hard = Particles(
        counts=np.full(n_events, k),
        px=px.ravel(),
        py=py.ravel(),
        pz=pz.ravel(),
        e=np.sqrt(px**2 + py**2 + pz**2 + mass**2).ravel(),
        pid=np.tile(pid, n_events),
        vx=zeros,
        vy=zeros.copy(),
        vz=zeros.copy(),
    )
    return hard, np.column_stack([px[:, -1], py[:, -1]])


def _residual(met: tuple[np.ndarray, np.ndarray], true: np.ndarray) -> float:
    """RMS of |reconstructed - true MET| (vectors)."""
    pt, phi = met
    return float(
        np.sqrt(
            np.mean((pt * np.cos(phi) - true[:, 0]) ** 2 + (pt * np.sin(phi) - true[:, 1]) ** 2)
        )
    )


def test_puppi_met_resolves_better_than_pf_met_at_mu_60(
    dy_and_library: tuple[EventRecord, PileupSetup],
) -> None:
    library = dy_and_library[1].library
    hard, true = _recoil_toy(120, np.random.default_rng(3))
    det = DetectorConfig()
    pu = pileup_reconstruct(hard, library, 60.0, "none", det, np.random.default_rng(4))
    pf = _residual(missing_pt(pu.unmitigated), true)
    puppi = _residual(missing_pt(pu.unmitigated, pu.unmitigated_columns["puppiw"]), true)
    bare = pileup_reconstruct(hard, library, 0.0, "none", det, np.random.default_rng(4))
    no_pileup = _residual(missing_pt(bare.unmitigated), true)
    assert no_pileup < 0.5 * pf  # pile-up dominates PF MET's resolution at mu = 60
    assert puppi < 0.85 * pf


def _n_leptons(t: dict) -> int:
    return int(ak.sum(ak.num(t["Muon_pt"])) + ak.sum(ak.num(t["Electron_pt"])))


def test_corrected_isolation_keeps_prompt_leptons_under_pileup(
    dy_and_library: tuple[EventRecord, PileupSetup],
) -> None:
    record, pileup = dy_and_library
    bare = _n_leptons(_reco(record, None))
    assert bare > 25  # up to two prompt leptons per Z -> ll event in the acceptance
    # the same overlay (same seed), selected by each mitigation's isolation
    tables = {
        m: _reco(record, PileupSetup(pileup.library, 60.0, m))
        for m in ("none", "puppi")
    }
    n = {m: _n_leptons(t) for m, t in tables.items()}
    assert n["none"] < 0.5 * bare  # pfRelIso03_all: the pile-up in the cone fails them
    assert n["puppi"] > 0.75 * bare  # puppiRelIso03 keeps most of them
    t = tables["puppi"]
    iso = {k: ak.to_numpy(ak.flatten(t[f"Muon_{k}"])) for k in ("pfRelIso03_all", "puppiRelIso03")}
    assert np.all(iso["puppiRelIso03"] < LeptonConfig().iso_max)  # selected by it
    assert np.all(iso["pfRelIso03_all"] >= iso["puppiRelIso03"])
    assert np.median(iso["pfRelIso03_all"]) > LeptonConfig().iso_max


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"mitigation": "puppi"}, "mitigation"),
        ({"pileup": 20.0, "detector": "none"}, "pileup"),
        ({"pileup": 250.0}, "pileup"),
        ({"pileup": 20.0, "mitigation": "softkiller"}, "mitigation"),
    ],
)
def test_bad_event_pileup_options(tmp_path: Path, extra: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(EventOptions, {"sample": "dy", "events": 10, "seed": 1, "out": tmp_path} | extra)
    assert err.value.key == key


def test_cli_generate_events_with_pileup(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    cmd = [sys.executable, "-m", "heptagon", "generate-events", "dy", "--events", "20"]
    common = ["--seed", "2", "--out", str(out), "--pileup-library", "50"]
    res = subprocess.run(
        [*cmd, *common, "--pileup", "10", "--mitigation", "puppi"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pileup"]["mu"] == 10
    assert manifest["pileup"]["mitigation"] == "puppi"
    assert len(manifest["pileup"]["library"]["sha256"]) == 64
    assert {"PuppiMET_pt", "PuppiMET_phi", "PV_npvs", "Muon_puppiRelIso03"} <= set(
        manifest["branches"]
    )
    # a bad option: one line, exit 2
    bad = subprocess.run(
        [*cmd, "--seed", "2", "--out", str(tmp_path / "bad"), "--mitigation", "chs"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "--mitigation needs --pileup" in bad.stderr


def test_event_shards_with_pileup_retain_freed_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the jet shards (docs/pileup.md, "Cost"): only with pile-up, once per shard."""
    from heptagon.generate import events

    retained: list[int] = []
    monkeypatch.setattr(events, "retain_freed_memory", lambda: bool(retained.append(1)))
    common = {"sample": "dy", "events": 4, "seed": 2, "shard_size": 2}
    events.generate_events(EventOptions(**common, out=tmp_path / "no-pu"), show_progress=False)
    assert retained == []
    with_pileup = EventOptions(**common, out=tmp_path / "pu", pileup=5, pileup_library=20)
    events.generate_events(with_pileup, show_progress=False)
    assert retained == [1, 1]
