"""heptagon.data.derive and ``heptagon data pnn | domains | mix``: the derived columns are
right, reproducible, recorded in derived.json, and the inputs are never touched.

The PNN tests read a tiny xbb-scan sample (12 jets per mass) and QCD sample (40 jets) in
the xbb-scan window, generated once and cached like tests/conftest.py's samples; the
mixture and domain tests read the shared top-vs-QCD sample (300 jets per class)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import heptagon.generate as generate_pkg
from heptagon.artifacts.derived import DERIVED_FILE, DerivedDataset
from heptagon.artifacts.schemas import json_schema
from heptagon.cli import main
from heptagon.data.derive import (
    add_pnn_parameter,
    class_masses,
    draw_parameter,
    label_domains,
    mix_samples,
    mixture_indices,
)
from heptagon.errors import ConfigError, DataError
from heptagon.generate.processes import XBB_MASSES
from heptagon.generate.run import GenerateOptions, generate


def _cache(request: pytest.FixtureRequest, name: str) -> Path:
    h = hashlib.sha256()
    for f in sorted(Path(generate_pkg.__file__).parent.glob("*.py")):
        h.update(f.read_bytes())
    return Path(request.config.cache.mkdir("heptagon-samples")) / f"{name}-{h.hexdigest()[:12]}"


@pytest.fixture(scope="session")
def xbb_sample(request: pytest.FixtureRequest) -> Path:
    """xbb-scan, 12 jets per mass, seed 3."""
    out = _cache(request, "xbb-scan-12")
    generate(GenerateOptions(sample="xbb-scan", jets=12, seed=3, out=out), show_progress=False)
    return out


@pytest.fixture(scope="session")
def qcd_sample(request: pytest.FixtureRequest) -> Path:
    """QCD in the xbb-scan window (pT 500-1000 GeV, no MPI), 40 jets, seed 2."""
    out = _cache(request, "qcd-xbb-40")
    options = GenerateOptions(
        sample="QCD", jets=40, seed=2, out=out, pt_min=500.0, pt_max=1000.0, mpi=False
    )
    generate(options, show_progress=False)
    return out


def _table(directory: Path, prefix: str = "") -> pa.Table:
    files = sorted((directory / "shards").glob(f"{prefix}*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------ the column rules


def test_drawn_parameters_follow_the_signal_distribution() -> None:
    signal = np.repeat([60.0, 80.0, 100.0], [100, 300, 600])  # probabilities 0.1, 0.3, 0.6
    drawn = draw_parameter(signal, 40_000, np.random.default_rng(1))
    assert set(np.unique(drawn)) == {60.0, 80.0, 100.0}
    for mass, p in ((60.0, 0.1), (80.0, 0.3), (100.0, 0.6)):
        sigma = np.sqrt(p * (1 - p) / len(drawn))
        assert abs(np.mean(drawn == mass) - p) < 4 * sigma


def test_mixture_indices_have_the_fractions_and_are_disjoint() -> None:
    is_signal = np.arange(1000) < 400  # 400 signal, 600 background
    m1, m2 = mixture_indices(is_signal, (0.7, 0.2), np.random.default_rng(0))
    assert len(m1) == len(m2)
    assert not set(m1) & set(m2)
    n = len(m1)
    # the largest n: 0.9 n signal <= 400, 1.1 n background <= 600
    assert n == 444
    assert is_signal[m1].sum() == round(0.7 * n)
    assert is_signal[m2].sum() == round(0.2 * n)
    with pytest.raises(ConfigError, match="two different numbers"):
        mixture_indices(is_signal, (0.5, 0.5), np.random.default_rng(0))


# ------------------------------------------------------------------ PNN


def test_class_masses_come_from_the_pythia_settings(xbb_sample: Path, qcd_sample: Path) -> None:
    assert class_masses(xbb_sample) == {f"Xbb{m}": float(m) for m in XBB_MASSES}
    assert class_masses(qcd_sample) == {}


def test_pnn_training_set(xbb_sample: Path, qcd_sample: Path, tmp_path: Path) -> None:
    before = _digest(xbb_sample), _digest(qcd_sample)
    made = add_pnn_parameter(xbb_sample, qcd_sample, tmp_path / "pnn", hold_out=[100], seed=5)
    assert (_digest(xbb_sample), _digest(qcd_sample)) == before  # inputs untouched
    assert DerivedDataset.read(tmp_path / "pnn" / DERIVED_FILE) == made
    raw = json.loads((tmp_path / "pnn" / DERIVED_FILE).read_text())
    jsonschema.validate(raw, json_schema("derived"))  # the file its docs/schemas describes
    assert made.seed == 5
    assert made.inputs["signal"].record == "manifest.json"
    signal = _table(tmp_path / "pnn", "signal_")
    for shard in (tmp_path / "pnn" / "shards").glob("signal_*.parquet"):
        table = pq.read_table(shard)
        mass = float(shard.stem.split("_")[1].removeprefix("Xbb"))  # signal_Xbb80_0000
        assert np.all(table["pnn_mass"].to_numpy() == mass)
    assert signal["label_Xbb"].to_pylist() == [True] * len(signal)
    assert not any(signal["label_QCD"].to_pylist())
    assert set(signal["pnn_mass"].to_numpy()) == {60.0, 80.0, 120.0, 140.0}  # 100 held out
    background = _table(tmp_path / "pnn", "background_")
    assert len(background) == 40
    assert all(background["label_QCD"].to_pylist())
    assert set(background["pnn_mass"].to_numpy()) <= {60.0, 80.0, 120.0, 140.0}
    assert "label_Xbb100" not in background.column_names  # the inputs' labels replaced


def test_pnn_set_is_reproducible(xbb_sample: Path, qcd_sample: Path, tmp_path: Path) -> None:
    runs = {
        name: add_pnn_parameter(xbb_sample, qcd_sample, tmp_path / name, seed=seed)
        for name, seed in (("a", 1), ("b", 1), ("c", 2))
    }
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    drawn = {n: _table(tmp_path / n, "background_")["pnn_mass"].to_numpy() for n in runs}
    assert not np.array_equal(drawn["a"], drawn["c"])


def test_pnn_test_set_at_one_mass(xbb_sample: Path, qcd_sample: Path, tmp_path: Path) -> None:
    made = add_pnn_parameter(xbb_sample, qcd_sample, tmp_path / "m100", at=100)
    assert made.settings["masses"] == {"Xbb100": 100.0}
    assert made.seed is None
    table = _table(tmp_path / "m100")
    assert np.all(table["pnn_mass"].to_numpy() == 100.0)
    assert table["label_Xbb"].to_numpy(zero_copy_only=False).sum() == 12
    with pytest.raises(ConfigError, match="both labelled 'QCD'"):
        add_pnn_parameter(xbb_sample, qcd_sample, tmp_path / "x", signal_label="QCD")
    with pytest.raises(ConfigError, match="no signal class at m = 90 GeV"):
        add_pnn_parameter(xbb_sample, qcd_sample, tmp_path / "m90", at=90)
    assert not (tmp_path / "m90").exists()


# ------------------------------------------------------------------ mixtures, domains


def test_mixtures_have_the_requested_fractions(top_qcd_sample: Path, tmp_path: Path) -> None:
    made = mix_samples(top_qcd_sample, tmp_path / "mix", signal="label_Tbqq",
                       fractions=(0.8, 0.3), seed=4)  # fmt: skip
    table = _table(tmp_path / "mix")
    m1 = table["label_M1"].to_numpy(zero_copy_only=False)
    assert np.array_equal(~m1, table["label_M2"].to_numpy(zero_copy_only=False))
    top = table["label_Tbqq"].to_numpy(zero_copy_only=False)
    n = int(m1.sum())
    assert n == int((~m1).sum()) == 272  # 1.1 n <= 300 top, 0.9 n <= 300 QCD
    assert top[m1].sum() == round(0.8 * n)
    assert top[~m1].sum() == round(0.3 * n)
    assert made.settings["signal_jets"] == {"M1": round(0.8 * n), "M2": round(0.3 * n)}
    # every jet at most once: (event, jet pT) pairs are unique within a shard
    for shard in (tmp_path / "mix" / "shards").glob("*.parquet"):
        jets = pq.read_table(shard, columns=["event", "jet_pt"])
        keys = set(zip(jets["event"].to_pylist(), jets["jet_pt"].to_pylist(), strict=True))
        assert len(keys) == len(jets)
    again = mix_samples(
        top_qcd_sample, tmp_path / "again", signal="label_Tbqq", fractions=(0.8, 0.3), seed=4
    )
    assert [f.sha256 for f in again.files] == [f.sha256 for f in made.files]


def test_truth_mixture_is_the_labels(top_qcd_sample: Path, tmp_path: Path) -> None:
    mix_samples(top_qcd_sample, tmp_path / "truth", signal="label_Tbqq", fractions=(1, 0))
    table = _table(tmp_path / "truth")
    assert len(table) == 600
    assert table["label_M1"].to_pylist() == table["label_Tbqq"].to_pylist()


def test_signal_by_expression(top_qcd_sample: Path, tmp_path: Path) -> None:
    made = mix_samples(top_qcd_sample, tmp_path / "mix", signal="jet_sdmass > 120",
                       fractions=(0.9, 0.1))  # fmt: skip
    table = _table(tmp_path / "mix")
    heavy = table["jet_sdmass"].to_numpy() > 120
    m1 = table["label_M1"].to_numpy(zero_copy_only=False)
    assert heavy[m1].sum() == made.settings["signal_jets"]["M1"] == round(0.9 * m1.sum())
    with pytest.raises(DataError, match="branch 'jet_nope'"):
        mix_samples(top_qcd_sample, tmp_path / "x", signal="jet_nope > 1", fractions=(1, 0))


def test_domains(top_qcd_sample: Path, tmp_path: Path) -> None:
    label_domains(top_qcd_sample, top_qcd_sample, tmp_path / "da")
    for role, domain, weight in (("source", 0.0, 1.0), ("target", 1.0, 0.0)):
        table = _table(tmp_path / "da", f"{role}_")
        assert len(table) == 600
        assert np.all(table["domain"].to_numpy() == domain)
        assert np.all(table["train_weight"].to_numpy() == weight)
    label_domains(top_qcd_sample, top_qcd_sample, tmp_path / "test", labelled_target=True)
    assert np.all(_table(tmp_path / "test", "target_")["train_weight"].to_numpy() == 1.0)


def test_domains_need_the_same_labels(
    top_qcd_sample: Path, xbb_sample: Path, tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="source's labels"):
        label_domains(top_qcd_sample, xbb_sample, tmp_path / "da")


# ------------------------------------------------------------------ the command line


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["heptagon", *argv])
    with pytest.raises(SystemExit) as stop:
        main()
    return int(stop.value.code or 0)


def test_cli_names_the_file_and_branch(
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [
        "data",
        "mix",
        str(top_qcd_sample),
        "--signal",
        "label_Wqq",
        "--fractions",
        "0.8",
        "0.2",
    ]
    assert _main([*args, "--out", str(tmp_path / "mix")], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "QCD_0000.parquet, branch 'label_Wqq'" in err
    assert not (tmp_path / "mix").exists()
    inside = str(top_qcd_sample / "mixed")
    assert _main([*args[:4], "label_Tbqq", *args[5:], "--out", inside], monkeypatch) == 2
    assert "inputs are read only" in capsys.readouterr().err


def test_cli_replaces_only_a_derived_dataset(
    top_qcd_sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["data", "domains", str(top_qcd_sample), str(top_qcd_sample), "--out"]
    assert _main([*args, str(tmp_path / "da")], monkeypatch) == 0
    assert _main([*args, str(tmp_path / "da"), "--labelled-target"], monkeypatch) == 0
    assert np.all(_table(tmp_path / "da", "target_")["train_weight"].to_numpy() == 1.0)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert _main([*args, str(tmp_path / "mine")], monkeypatch) == 2
    assert "is not a derived dataset" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert not list(tmp_path.glob(".*tmp"))  # no staging dir left
