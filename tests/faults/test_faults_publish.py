"""Fault injection: export, publish, predict and trigger speed on bad runs, models, bundles,
inputs and options (issue 15). One tiny trained PFN run for the module."""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
from faults_helpers import assert_user_error, heptagon, no_temp_files

from heptagon.publish.bundle import publish
from heptagon.publish.onnx import load_onnx, read_onnx
from heptagon.train.run import train
from heptagon.train.rundir import load_run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RANDOM = np.random.default_rng(0).bytes(4096)


@pytest.fixture(scope="module")
def run(top_qcd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults-publish") / "pfn"
    train(
        CONFIGS / "top_pfn.yaml",
        top_qcd_sample,
        out,
        overrides=["train.epochs=1", "train.progress=false", "model.options.phi_sizes=[16,16]"],
    )
    return out


@pytest.fixture(scope="module")
def bundle(run: Path) -> Path:
    return publish(run, say=lambda _: None)


@pytest.fixture
def shard(top_qcd_sample: Path) -> Path:
    return top_qcd_sample / "shards" / "Tbqq_0001.parquet"


@pytest.fixture
def tampered(bundle: Path, tmp_path: Path) -> Path:
    """A copy of the bundle whose model has other weights (a valid model, other scores)."""
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    _, proto = read_onnx(copy / "model.onnx")
    weights = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    data = bytearray(weights.raw_data)
    data[:4] = np.float32(3.0).tobytes()
    weights.raw_data = bytes(data)
    (copy / "model.onnx").write_bytes(proto.SerializeToString())
    return copy


def test_missing_run_dir(tmp_path: Path) -> None:
    for command in ("export", "publish"):
        res = heptagon(command, str(tmp_path / "nope"))
        assert_user_error(res, str(tmp_path / "nope" / "model.json"))
    assert not (tmp_path / "nope").exists()


def test_publish_never_ships_random_bytes(run: Path, tmp_path: Path) -> None:
    work = tmp_path / "run"
    shutil.copytree(run, work)
    (work / "model.onnx").write_bytes(RANDOM)
    res = heptagon("publish", str(work))
    assert res.returncode == 0, res.stderr
    assert f"{work / 'model.onnx'} is not a valid heptagon export" in res.stdout
    assert "re-exported" in res.stdout
    shipped = load_onnx(work / "bundle")  # the bundle's checksums hold
    assert shipped.checkpoint_sha256 == load_run(work).checkpoint_sha256()
    assert (work / "model.onnx").read_bytes() == (work / "bundle" / "model.onnx").read_bytes()
    no_temp_files(work)
    assert not [p for p in work.iterdir() if p.name.startswith(".bundle.")]


def test_tampered_bundle(tampered: Path, shard: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores"
    res = heptagon("predict", str(tampered / "model.onnx"), str(shard), "--out", str(out))
    assert_user_error(res, str(tampered / "model.onnx"), "SHA256SUMS")
    assert not out.exists()
    # the directory names the bundle just as well; --no-verify scores it, with a warning
    res = heptagon("predict", str(tampered), str(shard), "--out", str(out), "--no-verify")
    assert res.returncode == 0, res.stderr
    assert "warning" in res.stderr
    assert "--no-verify" in res.stderr
    assert pq.read_metadata(out / "Tbqq_0001.parquet").num_rows == pq.read_metadata(shard).num_rows
    res = heptagon("trigger", "speed", str(tampered), "--batch", "8", "--repeats", "5")
    assert_user_error(res, str(tampered / "model.onnx"))


def test_bundle_with_a_missing_or_unlisted_file(bundle: Path, shard: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    (copy / "MODEL_CARD.md").unlink()
    res = heptagon("predict", str(copy), str(shard), "--out", str(tmp_path / "a"))
    assert_user_error(res, str(copy / "MODEL_CARD.md"), "missing")
    sums = copy / "SHA256SUMS"
    sums.write_text(
        "".join(line + "\n" for line in sums.read_text().splitlines() if "model.onnx" not in line)
    )
    res = heptagon("predict", str(copy), str(shard), "--out", str(tmp_path / "a"))
    assert_user_error(res, str(sums), "model.onnx")


@pytest.mark.parametrize("content", ["random", "truncated", "empty"])
def test_predict_corrupt_model(content: str, bundle: Path, shard: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    good = (bundle / "model.onnx").read_bytes()
    model.write_bytes(
        {"random": RANDOM, "truncated": good[: len(good) // 2], "empty": b""}[content]
    )
    res = heptagon("predict", str(model), str(shard), "--out", str(tmp_path / "out"))
    assert_user_error(res, str(model))
    assert not (tmp_path / "out").exists()


def test_predict_output_dirs(
    bundle: Path, shard: Path, tmp_path: Path, unwritable_dir: Path
) -> None:
    res = heptagon("predict", str(bundle), str(shard), "--out", str(unwritable_dir))
    assert_user_error(res, str(unwritable_dir))
    deep = tmp_path / "a" / "b" / "c"  # missing parents are created
    res = heptagon("predict", str(bundle), str(shard), "--out", str(deep))
    assert res.returncode == 0, res.stderr
    assert (deep / "Tbqq_0001.parquet").is_file()


def test_predict_nan_in_an_input_branch(bundle: Path, shard: Path, tmp_path: Path) -> None:
    table = ak.from_parquet(shard)
    pt = ak.to_numpy(ak.flatten(table.part_px)).copy()
    pt[3] = np.nan
    table = ak.with_field(table, ak.unflatten(pt, ak.num(table.part_px)), "part_px")
    bad = tmp_path / "nan.parquet"
    ak.to_parquet(table, bad)
    out = tmp_path / "out"
    res = heptagon("predict", str(bundle), str(bad), "--out", str(out))
    assert_user_error(res, str(bad))
    assert not (out / "nan.parquet").exists()


def test_trigger_speed_bad_model_and_batch(bundle: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(RANDOM)
    res = heptagon("trigger", "speed", str(model), "--batch", "8", "--repeats", "5")
    assert_user_error(res, str(model))
    res = heptagon("trigger", "speed", str(bundle), "--batch", "0")
    assert_user_error(res, "batch")
