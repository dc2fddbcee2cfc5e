"""heptagon dqm: each fault changes the histograms as it should, the threshold rule,
certify on a clean run and on a run with a dead calorimeter region (through the CLI), and
the convolutional autoencoder (its shapes, and that it flags the same dead region)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import heptagon.generate as generate_pkg
from heptagon.apps.dqm.certify import TrainConfig, fit, score
from heptagon.apps.dqm.conv_autoencoder import HistogramConvAE
from heptagon.apps.dqm.methods import threshold_of
from heptagon.apps.dqm.observables import (
    HISTOGRAMS,
    OCCUPANCY_MAPS,
    histogram_shapes,
    histogram_slices,
    summary_features,
)
from heptagon.apps.dqm.simulate import (
    DQMData,
    Fault,
    JetSource,
    RunPlan,
    SimulateConfig,
    SourceOptions,
    load_data,
    load_source,
    make_source,
    simulate_runs,
)
from heptagon.cli import app
from heptagon.errors import ConfigError

#: LS of 200 events (the 300-jet source has about 250 events: none is drawn twice in an LS)
CFG = SimulateConfig(events_per_ls=200, seed=3)
#: an explicit region for the dead / hot faults
REGION = {"eta": (0.0, 1.5), "phi": (0.0, 1.5)}


@pytest.fixture(scope="module")
def source_dir(request: pytest.FixtureRequest) -> Path:
    """A tiny DQM source (300 QCD jets, R = 0.4, pT 30-1000 GeV), generated once and cached
    in pytest's cache dir, keyed by a hash of the generate stage's source (~30 s)."""
    h = hashlib.sha256()
    for f in sorted(Path(generate_pkg.__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    root = Path(request.config.cache.mkdir("heptagon-samples"))
    out = root / f"dqm-qcd-{h.hexdigest()[:12]}"
    return make_source(out, SourceOptions(jets=300, shard_size=300), show_progress=False)


@pytest.fixture(scope="module")
def source(source_dir: Path) -> JetSource:
    return load_source(source_dir)


def _run(source: JetSource, fault: Fault | None, *, run: int = 1, n_ls: int = 3) -> DQMData:
    """The same run (same events, same random draws) with or without a fault."""
    plan = RunPlan(run=run, n_ls=n_ls, fault=fault)
    return simulate_runs([plan], source, CFG, show_progress=False)


def _summary(data: DQMData, name: str) -> float:
    x, names = summary_features(data.run_counts(), data.run_rate())
    return float(x[0, names.index(name)])


def _cells_inside(eta: tuple[float, float], phi: tuple[float, float]) -> tuple[slice, slice]:
    """The occupancy-map cells that lie entirely inside the region."""
    axes = HISTOGRAMS["occ_neutral"].book().axes
    e, p = np.asarray(axes[0].edges), np.asarray(axes[1].edges)
    ie = np.flatnonzero((e[:-1] >= eta[0]) & (e[1:] <= eta[1]))
    ip = np.flatnonzero((p[:-1] >= phi[0]) & (p[1:] <= phi[1]))
    return slice(ie[0], ie[-1] + 1), slice(ip[0], ip[-1] + 1)


def test_dead_region_empties_its_occupancy_cells(source: JetSource) -> None:
    clean = _run(source, None, n_ls=6).run_counts()
    dead = _run(source, Fault(kind="dead_region", size=1.0, **REGION), n_ls=6).run_counts()
    cells = _cells_inside(REGION["eta"], REGION["phi"])
    for name in ("occ_neutral", "occ_charged"):
        assert clean[name][0][cells].min() > 0
        assert dead[name][0][cells].sum() == 0
        # outside the region the map is as full as without the fault (within statistics)
        outside = dead[name][0].sum() / (clean[name][0].sum() - clean[name][0][cells].sum())
        assert 0.8 < outside < 1.2


def test_half_dead_region_loses_about_half(source: JetSource) -> None:
    clean = _run(source, None).run_counts()["occ_neutral"][0]
    half = _run(source, Fault(kind="dead_region", size=0.5, **REGION)).run_counts()
    cells = _cells_inside(REGION["eta"], REGION["phi"])
    assert 0.35 < half["occ_neutral"][0][cells].sum() / clean[cells].sum() < 0.65


def test_jes_shift_moves_the_jet_pt_mean(source: JetSource) -> None:
    clean = _run(source, None)
    shifted = _run(source, Fault(kind="jes_shift", size=0.05))
    # the same events: every jet's pT scales by 1.05 (binned means, log-spaced bins)
    ratio = _summary(shifted, "jet_pt:mean") / _summary(clean, "jet_pt:mean")
    assert 1.03 < ratio < 1.07
    assert _summary(shifted, "jet_eta:mean") == pytest.approx(_summary(clean, "jet_eta:mean"))


def test_tracker_inefficiency_turns_tracks_into_neutral_hadrons(source: JetSource) -> None:
    clean = _run(source, None)
    ineff = _run(source, Fault(kind="tracker_ineff", size=0.8, eta=(-2.5, 2.5)))
    assert _summary(ineff, "jet_ntracks:mean") < 0.5 * _summary(clean, "jet_ntracks:mean")
    assert _summary(ineff, "frac_nhad:mean") > _summary(clean, "frac_nhad:mean") + 0.2
    charged = ineff.run_counts()["occ_charged"].sum() / clean.run_counts()["occ_charged"].sum()
    assert charged < 0.5


def test_noisy_towers_fill_their_cells(source: JetSource) -> None:
    tower = (0.375, 0.39)  # a map cell's centre: the fakes (+- half a tower) stay inside
    # one LS: the fakes are drawn last, so everything else is the same as without them
    clean = _run(source, None, n_ls=1).run_counts()["occ_neutral"][0]
    fault = Fault(kind="noisy_towers", size=0.5, towers=(tower,))
    noisy_data = _run(source, fault, n_ls=1)
    noisy = noisy_data.run_counts()["occ_neutral"][0]
    axes = HISTOGRAMS["occ_neutral"].book().axes
    cell = (axes[0].index(tower[0]), axes[1].index(tower[1]))
    extra = noisy[cell] - clean[cell]
    # the tower fires in half the events; fakes below the 2 GeV map threshold are not
    # counted (1 + Exp(5) GeV: exp(-1/5) = 82 % pass)
    expected = 0.5 * noisy_data.ls["n_events"].sum() * np.exp(-1 / 5)
    assert extra == pytest.approx(expected, rel=0.25)
    assert noisy.sum() - noisy[cell] == clean.sum() - clean[cell]


def test_hot_region_raises_occupancy_above_threshold(source: JetSource) -> None:
    clean = _run(source, None).run_counts()["occ_neutral"][0]
    hot = _run(source, Fault(kind="hot_region", size=0.5, **REGION)).run_counts()["occ_neutral"]
    cells = _cells_inside(REGION["eta"], REGION["phi"])
    assert hot[0][cells].sum() > 1.05 * clean[cells].sum()


def test_rate_drop_lowers_events_per_luminosity(source: JetSource) -> None:
    clean = _run(source, None, n_ls=4)
    drop = _run(source, Fault(kind="rate_drop", size=0.3), n_ls=4)
    assert drop.run_rate()[0] / clean.run_rate()[0] == pytest.approx(0.7, abs=0.05)
    assert drop.ls["bad"].all()
    assert not clean.ls["bad"].any()


def test_fault_labels_start_at_their_ls(source: JetSource) -> None:
    data = _run(source, Fault(kind="jes_shift", size=0.1, start_ls=2), n_ls=4)
    assert data.ls["bad"].tolist() == [False, False, True, True]
    assert data.ls["fault"].tolist() == ["", "", "jes_shift", "jes_shift"]
    assert data.runs[0]["bad"]


def test_fault_size_is_checked() -> None:
    with pytest.raises(ConfigError, match="size"):
        Fault(kind="dead_region", size=1.5)


def test_threshold_rule_on_toy_data() -> None:
    rng = np.random.default_rng(0)
    good = rng.chisquare(5, 199)
    assert threshold_of(good) == good.max()
    assert threshold_of(good, 0.9) == pytest.approx(np.quantile(good, 0.9))
    # the max rule flags a fresh good sample with probability 1 / (n + 1) = 0.5 %
    fresh = rng.chisquare(5, 100_000)
    assert 0.002 < np.mean(fresh > threshold_of(good)) < 0.012
    assert 0.07 < np.mean(fresh > threshold_of(good, 0.9)) < 0.14
    # and catches most of a sample whose scores are shifted up
    assert np.mean(rng.chisquare(5, 1000) + 15 > threshold_of(good)) > 0.5
    with pytest.raises(ConfigError, match="quantile"):
        threshold_of(good, 0.0)


@pytest.fixture(scope="module")
def dead_region_runs(source: JetSource) -> tuple[DQMData, DQMData]:
    """30 good training runs; a clean test run (101) and one with a dead region of 2 x 2
    occupancy-map cells (102); 10 LS each."""
    train = simulate_runs(
        [RunPlan(run=r, n_ls=10) for r in range(1, 31)], source, CFG, show_progress=False
    )
    dead = Fault(kind="dead_region", size=1.0, eta=(0.0, 1.0), phi=(0.0, np.pi / 3))
    test = simulate_runs(
        [RunPlan(run=101, n_ls=10), RunPlan(run=102, n_ls=10, fault=dead)],
        source,
        CFG,
        show_progress=False,
    )
    return train, test


def test_certify_clean_and_dead_region_runs(
    dead_region_runs: tuple[DQMData, DQMData], tmp_path: Path
) -> None:
    train, test = dead_region_runs
    train.save(tmp_path / "train")
    test.save(tmp_path / "test")
    assert load_data(tmp_path / "test").run_bad.tolist() == [False, True]
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["dqm", "train", str(tmp_path / "train"), "--out", str(tmp_path / "model"),
         "--epochs", "15", "--no-classifiers"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["dqm", "certify", str(tmp_path / "test"), "--model", str(tmp_path / "model"),
         "--out", str(tmp_path / "cert"), "--aggregate", "run"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    verdicts = json.loads((tmp_path / "cert" / "verdicts.json").read_text())
    assert verdicts["method"] == "autoencoder"
    clean_run, dead_run = verdicts["runs"]
    assert clean_run["verdict"] == "good"
    assert dead_run["verdict"] == "bad"
    drivers = [d["histogram"] for d in dead_run["drivers"]]
    assert {"occ_neutral", "occ_charged"} & set(drivers)
    report = (tmp_path / "cert" / "report.md").read_text()
    assert "run 102" in report
    assert (tmp_path / "cert" / "plots" / "score_vs_run.png").exists()


def test_conv_autoencoder_reconstructs_each_histogram_from_itself() -> None:
    slices = histogram_slices()
    width = slices["rate"].stop
    torch.manual_seed(0)
    net = HistogramConvAE(histogram_shapes(), channels=2, latent=3).eval()
    z = torch.randn(5, width)
    with torch.no_grad():
        recon = net(z)
        assert recon.shape == (5, width)
        # the rate is reconstructed by its (standardised) mean over the good LS
        assert (recon[:, slices["rate"]] == 0).all()
        # changing one map changes its own reconstruction only
        moved = z.clone()
        moved[:, slices["occ_neutral"]] += 1.0
        changed = (net(moved) != recon).any(dim=0).numpy()
    inside = np.zeros(width, dtype=bool)
    inside[slices["occ_neutral"]] = True
    assert changed[inside].any()
    assert not changed[~inside].any()
    # every 1D histogram and map has its own network: Conv1d or Conv2d
    for name, shape in histogram_shapes().items():
        kind = torch.nn.Conv2d if name in OCCUPANCY_MAPS else torch.nn.Conv1d
        assert len(shape) == (2 if name in OCCUPANCY_MAPS else 1)
        assert any(isinstance(m, kind) for m in net.nets[name].modules())


def test_conv_autoencoder_flags_a_dead_region(dead_region_runs: tuple[DQMData, DQMData]) -> None:
    train, test = dead_region_runs
    cfg = TrainConfig(methods=("conv_autoencoder",), ae_epochs=15, classifiers=False)
    model = fit(train, cfg)
    scores = score(model, test)
    cal = model.calibration["conv_autoencoder"]["run"]
    clean, dead = scores.run["conv_autoencoder:run"]
    assert clean <= cal.threshold < dead
    drivers = [h for h, _ in cal.drivers(scores.run_errors["conv_autoencoder"])[1]]
    assert set(OCCUPANCY_MAPS) & set(drivers)


def test_certify_names_a_missing_method(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["dqm", "certify", str(tmp_path), "--model", str(tmp_path), "--out", str(tmp_path)]
    )
    assert res.exit_code != 0
    assert "model.json" in str(res.exception)


def test_simulate_cli_labels_every_run(source_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    res = CliRunner().invoke(
        app,
        ["dqm", "simulate", "--out", str(out), "--runs", "3", "--ls", "2",
         "--events-per-ls", "50", "--bad-fraction", "1", "--faults", "jes_shift",
         "--size", "0.02:0.04", "--source", str(source_dir)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = load_data(out)
    assert data.run_bad.all()
    assert {r["fault"]["kind"] for r in data.runs} == {"jes_shift"}
    assert all(0.02 <= r["fault"]["size"] <= 0.04 for r in data.runs)
    assert data.counts["occ_neutral"].shape[0] == 6
    res = CliRunner().invoke(
        app, ["dqm", "simulate", "--out", str(out), "--size", "big", "--source", str(source_dir)]
    )
    assert isinstance(res.exception, ConfigError)
    assert "size" in str(res.exception)
