"""``heptagon refine train|apply`` end to end on the tiny paired FullSim / FastSim sample:
refined columns next to the FastSim ones, the same rows in the same order."""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from heptagon.apps.refine.jets import paired_jets, read_jets
from heptagon.apps.refine.train import Refiner
from heptagon.cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the cores are shared


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


def _with_score(sample: Path, out: Path, shift: float = 0.0) -> Path:
    """A copy of the sample's shards with a bounded ``score_b`` column (a stand-in for a
    tagger output: a function of the jet's reconstructed mass and pT, its logit moved by
    ``shift``)."""
    out.mkdir()
    for f in sorted(sample.glob("shards/*.parquet")):
        t = pq.read_table(f)
        m, pt = t["jet_sdmass"].to_numpy(), t["jet_pt"].to_numpy()
        score = 1 / (1 + np.exp(-(m - 8.0) / 4.0 - 0.01 * (pt - 60.0) - shift))
        pq.write_table(t.append_column("score_b", pa.array(score.astype(np.float32))), out / f.name)
    return out


def test_train_and_apply_end_to_end(paired_samples: dict[str, Path], tmp_path: Path) -> None:
    full, fast = (str(paired_samples[c]) for c in ("full", "fast"))
    model = tmp_path / "refine.pt"
    out = _run(
        "refine", "train", "--full", full, "--fast", fast, "--columns", "jet_pt,jet_sdmass",
        "--out", str(model), "--epochs", "3", "--batch", "16", "--threads", "1",
    )  # fmt: skip
    assert "paired jets" in out
    refiner = Refiner.load(model)
    assert refiner.columns == ("jet_pt", "jet_sdmass")
    assert len(refiner.history) == 3
    assert refiner.mmd_max == 0.0  # the default bound: as close as FullSim to itself
    assert refiner.conditional  # the default term: per flavour with generator pT, eta
    _run("refine", "apply", str(model), fast, "--out", str(tmp_path / "refined"))
    for shard in sorted(paired_samples["fast"].glob("shards/*.parquet")):
        before = pq.read_table(shard)
        after = pq.read_table(tmp_path / "refined" / shard.name)
        # the FastSim columns untouched, in the same rows and order, refined ones beside
        assert after.column_names == [*before.column_names, "jet_pt_refined", "jet_sdmass_refined"]
        assert after.select(before.column_names).equals(before)
        _, jets = read_jets(shard, refiner.columns)
        refined = np.stack([after[f"{c}_refined"].to_numpy() for c in refiner.columns], 1)
        m = jets.matched
        assert np.array_equal(refined[~m], jets.values[~m])  # no generator jet: unchanged
        # row i is row i's own refinement (row-aligned): one jet at a time gives the same
        for i in np.flatnonzero(m)[:5]:
            alone = refiner.refine(jets.values[i : i + 1], jets.conditions()[i : i + 1])
            np.testing.assert_allclose(refined[i], alone[0], rtol=1e-5)
        assert not np.allclose(refined[m], jets.values[m])  # it did change something


def test_bounded_columns_and_the_multiplier(
    paired_samples: dict[str, Path], tmp_path: Path
) -> None:
    full = _with_score(paired_samples["full"], tmp_path / "full")
    fast = _with_score(paired_samples["fast"], tmp_path / "fast", shift=3.0)
    model = tmp_path / "refine.pt"
    _run(
        "refine", "train", "--full", str(full), "--fast", str(fast), "--columns", "score_b",
        "--bounded", "score_b", "--out", str(model), "--epochs", "4", "--batch", "16",
        "--mmd-max", "0.0001", "--marginal", "--threads", "1",
    )  # fmt: skip
    refiner = Refiner.load(model)
    assert not refiner.conditional
    assert refiner.mmd_max == 0.0001
    lam = [h["multiplier"] for h in refiner.history]
    # FastSim's score is far off FullSim's: the constraint is violated, its multiplier grows
    assert all(b > a for a, b in pairwise(lam))
    assert lam[0] > 0
    _run("refine", "apply", str(model), str(fast), "--out", str(tmp_path / "refined"))
    for f in sorted((tmp_path / "refined").glob("*.parquet")):
        score = pq.read_table(f)["score_b_refined"].to_numpy()
        assert np.all((score >= 0) & (score <= 1))


def test_pairs_are_the_same_generator_jets(paired_samples: dict[str, Path]) -> None:
    a, b = paired_jets(str(paired_samples["full"]), str(paired_samples["fast"]), ["jet_pt"])
    assert a.event.size == b.event.size > 40
    assert np.array_equal(a.event, b.event)
    assert np.array_equal(a.gen_pt, b.gen_pt)  # the same generator jet, not a neighbour
    assert not np.array_equal(a.values, b.values)  # but two detector chains


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--columns", "no_such_branch"], "no_such_branch"),
        (["--columns", "jet_pt", "--bounded", "jet_eta"], "not a refined column: jet_eta"),
        (["--columns", "jet_pt", "--mmd-max", "0.1", "--mmd-weight", "1"], "not both"),
    ],
)
def test_bad_training_options_are_one_line(
    paired_samples: dict[str, Path], tmp_path: Path, extra: list[str], needle: str
) -> None:
    full, fast = (str(paired_samples[c]) for c in ("full", "fast"))
    args = ["refine", "train", "--full", full, "--fast", fast, "--out", str(tmp_path / "m.pt")]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code != 0
    assert needle in str(result.exception) + result.output
    assert not (tmp_path / "m.pt").exists()


def test_apply_refuses_another_checkpoint(tmp_path: Path, paired_samples: dict[str, Path]) -> None:
    import torch

    bogus = tmp_path / "other.pt"
    torch.save({"state": {}}, bogus)
    result = CliRunner().invoke(
        app,
        ["refine", "apply", str(bogus), str(paired_samples["fast"]), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code != 0
    assert "not a heptagon refine model" in str(result.exception)
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
