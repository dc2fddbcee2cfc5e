"""predict --format root: a TTree named like the input tree, one entry per input entry in
order (a friend of the input tree), weaver's branch names, written atomically."""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot
from doc_pages import bash_lines, run_command
from typer.testing import CliRunner

from heptagon.cli import app
from heptagon.errors import ConfigError, DataError
from heptagon.infer.predict import predict


@pytest.fixture(scope="module")
def root_input(tmp_path_factory: pytest.TempPathFactory, top_qcd_sample: Path) -> Path:
    """A ROOT copy of one shard, its tree named ``Events`` (as NanoAOD's)."""
    arrays = ak.from_parquet(top_qcd_sample / "shards" / "Tbqq_0000.parquet")
    path = tmp_path_factory.mktemp("root") / "tbqq.root"
    particles = {n.split("_", 1)[1]: arrays[n] for n in arrays.fields if n.startswith("part_")}
    jets = {n: ak.to_numpy(arrays[n]) for n in arrays.fields if not n.startswith("part_")}
    branches = {**jets, "part": ak.zip(particles)}
    types = {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}
    with uproot.recreate(path) as file:
        file.mktree("Events", types).extend(branches)
    return path


def test_root_output_is_a_friend_of_the_input_tree(
    tmp_path: Path, root_input: Path, onnx_model: Path
) -> None:
    runner = CliRunner()
    args = ["predict", str(onnx_model), str(root_input), "--observers", "event,jet_pt"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "root"), "--format", "root"])
    assert result.exit_code == 0, result.output
    (parquet,) = predict(onnx_model, root_input, tmp_path / "pq", observers=["event", "jet_pt"])
    with uproot.open(tmp_path / "root" / "tbqq.root") as out, uproot.open(root_input) as source:
        assert [key.split(";")[0] for key in out] == ["Events"]  # the input's tree name
        friend, tree = out["Events"], source["Events"]
        assert friend.num_entries == tree.num_entries
        got = friend.arrays(library="np")
        # entry i of the friend is entry i of the input tree: the event ids line up
        np.testing.assert_array_equal(got["event"], tree["event"].array(library="np"))
        np.testing.assert_array_equal(got["label_Tbqq"], tree["label_Tbqq"].array(library="np"))
    assert list(got) == ["score_QCD", "score_Tbqq", "label_QCD", "label_Tbqq", "event", "jet_pt"]
    assert got["score_Tbqq"].dtype == np.float32
    table = pq.read_table(parquet)
    for name in table.column_names:  # the same numbers as the Parquet output
        np.testing.assert_array_equal(got[name], table[name].to_numpy())
    np.testing.assert_allclose(got["score_QCD"] + got["score_Tbqq"], 1.0, rtol=1e-6)


def test_root_output_written_atomically(
    tmp_path: Path, root_input: Path, onnx_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails half-way leaves neither the output nor its temporary file."""

    def fail_half_way(path: Path) -> None:
        Path(path).write_bytes(b"root\0half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(uproot, "recreate", fail_half_way)
    with pytest.raises(DataError, match=r"tbqq\.root: cannot write the output .*No space left"):
        predict(onnx_model, root_input, tmp_path / "out", fmt="root", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_unknown_format(tmp_path: Path, root_input: Path, onnx_model: Path) -> None:
    with pytest.raises(ConfigError, match="unknown output format 'csv'"):
        predict(onnx_model, root_input, tmp_path, fmt="csv", progress=False)
    assert not any(tmp_path.iterdir())


def test_the_docs_command_runs(
    tmp_path: Path, root_input: Path, onnx_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cmssw.md's predict command, run as written next to a model and a ROOT file."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "cmssw.md"
    (line,) = bash_lines(docs.read_text())
    shutil.copy(onnx_model, tmp_path / "model.onnx")
    shutil.copy(root_input, tmp_path / "tbqq.root")
    monkeypatch.chdir(tmp_path)
    run_command(line)
    with uproot.open(tmp_path / "friends" / "tbqq.root") as out, uproot.open(root_input) as src:
        assert out["Events"].num_entries == src["Events"].num_entries
