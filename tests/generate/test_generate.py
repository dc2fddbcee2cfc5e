"""`heptagon generate`: schema, physics, reproducibility, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from heptagon.errors import ConfigError
from heptagon.generate.run import GenerateOptions, generate
from heptagon.io import sha256sum

PART = (
    "px py pz energy deta dphi charge isChargedHadron isNeutralHadron isPhoton isElectron "
    "isMuon d0val d0err dzval dzerr"
)
JET = "pt eta phi energy nparticles sdmass tau1 tau2 tau3 tau4"
JETCLASS_BRANCHES = {f"part_{b}" for b in PART.split()} | {f"jet_{b}" for b in JET.split()}


def load(dataset: Path, cls: str) -> ak.Array:
    files = sorted((dataset / "shards").glob(f"{cls}_*.parquet"))
    return ak.concatenate([ak.from_parquet(f) for f in files])


def small(out: Path, **kw: object) -> GenerateOptions:
    args: dict[str, object] = {
        "sample": "top-vs-qcd",
        "jets": 30,
        "seed": 11,
        "out": out,
        "shard_size": 15,
    }
    args.update(kw)
    return GenerateOptions(**args)  # type: ignore[arg-type]


def checksums(out: Path) -> dict[str, str]:
    return {f.name: sha256sum(f) for f in sorted((out / "shards").glob("*.*")) if f.is_file()}


# --- schema -------------------------------------------------------------------------


def test_schema_and_manifest(top_qcd_sample: Path) -> None:
    manifest = json.loads((top_qcd_sample / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert set(manifest["classes"]) == {"Tbqq", "QCD"}
    assert manifest["versions"]["pythia8mc"] == "8.317.2"
    assert manifest["generator"]["mpi"] is False  # as in the landscape dataset
    assert manifest["generator"]["pthat_min_gev"] == pytest.approx(0.8 * 550)
    assert manifest["detector"]["tracker_eta_max"] == 2.5
    n_jets, shard = manifest["jets_per_class"], manifest["shard_size"]
    assert n_jets == 300
    assert shard == 150
    assert len(manifest["files"]) == 2 * n_jets // shard
    for f in manifest["files"]:
        assert sha256sum(top_qcd_sample / f["file"]) == f["sha256"]
    for cls, c in manifest["classes"].items():
        assert c["jets"] == n_jets
        assert c["sigma_gen_pb"] > 0
        assert 0 < c["sigma_err_pb"] < c["sigma_gen_pb"]
        assert c["n_tried"] >= c["n_accepted"] == c["events_generated"]
        jets = load(top_qcd_sample, cls)
        assert len(jets) == n_jets
        assert set(jets.fields) >= JETCLASS_BRANCHES
        assert set(manifest["branches"]) == set(jets.fields)
        # one-hot labels
        assert ak.all(jets[f"label_{cls}"])
        other = "QCD" if cls == "Tbqq" else "Tbqq"
        assert not ak.any(jets[f"label_{other}"])
        # the selection of the sample definition
        assert ak.all((jets.jet_pt >= 550) & (jets.jet_pt < 650))
        assert ak.all(abs(jets.jet_eta) < 2.0)
        assert ak.all(jets.jet_nparticles == ak.num(jets.part_px))
        # constituents are sorted by pT, lie inside the jet and add up to it
        pt = np.hypot(jets.part_px, jets.part_py)
        assert ak.all(pt[:, :-1] >= pt[:, 1:])
        dr = ak.to_numpy(ak.flatten(np.hypot(jets.part_deta, jets.part_dphi)))
        # anti-kT: within R of the axis, except a few soft particles: a soft protojet (up
        # to R wide) merges with a hard one within R of its axis, and the axis moves again
        # when hard protojets merge (seen: 2.4 R, a 0.2 GeV track)
        assert np.mean(dr > 0.8) < 0.01
        assert dr.max() < 3 * 0.8
        np.testing.assert_allclose(
            ak.to_numpy(np.hypot(ak.sum(jets.part_px, axis=1), ak.sum(jets.part_py, axis=1))),
            ak.to_numpy(jets.jet_pt),
            rtol=1e-4,
        )
        # exactly one particle type per constituent
        kinds = sum(
            jets[f"part_is{k}"]
            for k in ("ChargedHadron", "NeutralHadron", "Photon", "Electron", "Muon")
        )
        assert ak.all(kinds == 1)
        assert ak.all((jets.part_charge != 0) == (jets.part_d0err > 0))


# --- physics ------------------------------------------------------------------------


def mode(values: np.ndarray, width: float = 10.0) -> float:
    hist, edges = np.histogram(values, bins=np.arange(0, 300 + width, width))
    return float(edges[np.argmax(hist)] + width / 2)


def test_top_mass_peak_and_substructure(top_qcd_sample: Path) -> None:
    top, qcd = load(top_qcd_sample, "Tbqq"), load(top_qcd_sample, "QCD")
    m_top, m_qcd = ak.to_numpy(top.jet_sdmass), ak.to_numpy(qcd.jet_sdmass)
    assert 160 <= mode(m_top) <= 185
    assert np.median(m_qcd) < 0.4 * np.median(m_top)
    tau32_top = ak.to_numpy(top.jet_tau3 / top.jet_tau2)
    tau32_qcd = ak.to_numpy(qcd.jet_tau3 / qcd.jet_tau2)
    assert np.median(tau32_top) < np.median(tau32_qcd) - 0.15


def test_w_jets_peak_at_the_w_mass(tmp_path: Path) -> None:
    s = generate(
        GenerateOptions(sample="Wqq", jets=120, seed=5, out=tmp_path, pt_max=700),
        show_progress=False,
    )
    w = load(s.out, "Wqq")
    assert 70 <= mode(ak.to_numpy(w.jet_sdmass)) <= 90
    tau21 = ak.to_numpy(w.jet_tau2 / w.jet_tau1)
    assert np.median(tau21) < 0.5


def test_ak4_flavour_labels_and_vertices(tmp_path: Path) -> None:
    s = generate(
        GenerateOptions(sample="ak4-flavour", jets=25, seed=2, out=tmp_path),
        show_progress=False,
    )
    assert set(s.manifest.to_json()["classes"]) == {"b", "c", "uds", "g_ak4"}
    b, light = load(s.out, "b"), load(s.out, "uds")
    assert ak.all(b.label_b)
    assert ak.all(light.label_uds)
    assert ak.all(load(s.out, "g_ak4").label_g)
    frac_sv_b = float(ak.mean(ak.num(b.sv_mass) > 0))
    frac_sv_light = float(ak.mean(ak.num(light.sv_mass) > 0))
    assert frac_sv_b > 0.5 > 0.2 > frac_sv_light

    # b-hadron decay products are displaced: large impact-parameter significance
    def max_sig(j: ak.Array) -> np.ndarray:
        sig = abs(j.part_d0val) / ak.where(j.part_d0err > 0, j.part_d0err, np.inf)
        return ak.to_numpy(ak.fill_none(ak.max(sig, axis=1), 0.0))

    assert np.median(max_sig(b)) > 3 * np.median(max_sig(light))
    assert ak.all(b.sv_mass < 6.5)  # a b hadron's visible tracks stay below its mass


def test_detector_none_gives_hadron_level(tmp_path: Path) -> None:
    reco = generate(small(tmp_path / "reco", jets=15), show_progress=False)
    had = generate(small(tmp_path / "had", jets=15, detector="none"), show_progress=False)
    assert had.manifest.to_json()["detector"] is None
    r, h = load(reco.out, "Tbqq"), load(had.out, "Tbqq")
    # tracking inefficiency and calorimeter merging reduce the multiplicity (same events)
    assert ak.mean(h.jet_nparticles) > 1.05 * ak.mean(r.jet_nparticles)
    assert ak.sum(h.part_isPhoton) > 1.1 * ak.sum(r.part_isPhoton)
    assert ak.all(h.part_d0err == 0)


# --- reproducibility, parallelism, resume ---------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("ref")
    generate(small(out), show_progress=False)
    return checksums(out)


def test_same_seed_same_bytes_for_any_jobs(tmp_path: Path, reference: dict[str, str]) -> None:
    generate(small(tmp_path, jobs=2), show_progress=False)
    assert checksums(tmp_path) == reference
    assert len([k for k in reference if k.endswith(".parquet")]) == 4


def test_other_seed_other_events(tmp_path: Path, reference: dict[str, str]) -> None:
    generate(small(tmp_path, seed=12), show_progress=False)
    got = checksums(tmp_path)
    assert all(got[k] != reference[k] for k in got if k.endswith(".parquet"))


def test_same_under_dask(tmp_path: Path, reference: dict[str, str]) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        generate(small(tmp_path, scheduler=cluster.scheduler_address), show_progress=False)
    assert checksums(tmp_path) == reference


def test_resume_after_a_killed_run(tmp_path: Path, reference: dict[str, str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "heptagon",
        "generate",
        "top-vs-qcd",
        "--jets",
        "30",
        "--seed",
        "11",
        "--shard-size",
        "15",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "shards").glob(".*.parquet.json")):
        assert proc.poll() is None, "run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "manifest.json").exists()
    summary = generate(small(tmp_path), show_progress=False)
    assert summary.skipped_shards >= 1
    assert checksums(tmp_path) == reference
    assert not list((tmp_path / "shards").glob("*.tmp"))


def test_corrupted_shard_is_regenerated(tmp_path: Path, reference: dict[str, str]) -> None:
    generate(small(tmp_path), show_progress=False)
    victim = tmp_path / "shards" / "QCD_0001.parquet"
    victim.write_bytes(victim.read_bytes()[:100])
    summary = generate(small(tmp_path), show_progress=False)
    assert summary.skipped_shards == 3
    assert checksums(tmp_path) == reference


def test_root_output_has_the_same_content(tmp_path: Path) -> None:
    pq_out = generate(small(tmp_path / "pq", jets=15), show_progress=False)
    root_out = generate(small(tmp_path / "root", jets=15, format="root"), show_progress=False)
    assert root_out.manifest.to_json()["files"][0]["file"].endswith(".root")
    with uproot.open(root_out.out / "shards" / "Tbqq_0000.root") as f:
        tree = f["tree"]
        assert tree.classname == "TTree"
        got = tree.arrays(["part_px", "jet_sdmass", "label_Tbqq", "event"])
    want = ak.from_parquet(pq_out.out / "shards" / "Tbqq_0000.parquet")
    assert ak.all(got.part_px == want.part_px)
    assert ak.all(got.jet_sdmass == want.jet_sdmass)
    assert ak.all(got.event == want.event)


# --- bad options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"sample": "Zprime"}, "sample"),
        ({"pt_min": 700.0}, "pt_min"),
        ({"pt_min": 600.0, "pt_max": 600.0}, "pt_min"),
    ],
)
def test_bad_options_raise_config_errors(tmp_path: Path, kw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        small(tmp_path, **kw)
    assert err.value.key == key


def test_unwritable_output(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write"):
        generate(small(target / "sub"), show_progress=False)


def test_other_settings_in_the_same_dir_are_refused(tmp_path: Path) -> None:
    generate(small(tmp_path, jets=15), show_progress=False)
    with pytest.raises(ConfigError, match=r"other settings.*seed"):
        generate(small(tmp_path, jets=15, seed=99), show_progress=False)


def test_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "heptagon",
            "generate",
            "nonsense",
            "--jets",
            "5",
            "--seed",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown sample 'nonsense'" in lines[0]
