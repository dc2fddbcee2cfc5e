"""heptagon's tensors equal weaver-core 0.5.3's, element for element, on tiny files.

The comparison is benchmarks/weaver_equivalence.py's (``compare``): each weaver data config
of tests/data/weaver/ on the same ROOT and Parquet files in the JetClass layout, read by
weaver's ``SimpleIterDataset`` and by heptagon, entries aligned by their ``event`` index.
Where weaver computes something (auto standardisation, reweighting tables) it writes an
``*.auto.yaml`` here, and heptagon loads that file unchanged; heptagon's own ``auto``
(``compute_preprocess``) is checked against that file's numbers too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("weaver")

from heptagon.data.config import load_config
from heptagon.data.preprocess import Preprocess

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "tests" / "data" / "weaver").glob("*.yaml"))
N_JETS = 60  # per class and file


import weaver_equivalence as bench  # noqa: E402  (benchmarks/ is on pytest's pythonpath)


@pytest.fixture(scope="module", params=bench.FORMATS)
def jet_files(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    directory = tmp_path_factory.mktemp(f"weaver_{request.param}")
    return bench.write_files(directory, N_JETS, request.param)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_same_tensors_as_weaver(config: Path, jet_files: list[Path], tmp_path: Path) -> None:
    result = bench.compare(config, jet_files, tmp_path)
    entries = result["entries"]
    assert entries["heptagon"] == entries["weaver"] > 0
    diffs = result["max_abs_diff"]
    spec = load_config(config)
    assert set(spec.inputs) <= set(diffs)  # every input group was compared
    assert {k: v for k, v in diffs.items() if not v <= 1e-6} == {}
    computed = spec.has_auto or (
        spec.weights is not None and not spec.weights.use_precomputed_weights
    )
    assert result["weaver_config"].endswith(".auto.yaml") == computed
    if "weight" in diffs:  # the discarded entries (outside the bins) are there and weigh 0
        assert 0 < entries["zero_weight"] < entries["weighted"]


def test_a_weaver_auto_yaml_is_read_unchanged(jet_files: list[Path], tmp_path: Path) -> None:
    """weaver writes the *.auto.yaml (its own auto standardisation); heptagon reads the
    file as it is and uses weaver's numbers, clipping and wrapping as weaver does."""
    config = tmp_path / "jetclass_full_auto.yaml"
    config.write_text((ROOT / "tests" / "data" / "weaver" / config.name).read_text())
    auto = bench.weaver_config(config, jet_files)
    assert auto.name.endswith(".auto.yaml")
    params = yaml.safe_load(auto.read_text())["preprocess"]["params"]
    preprocess = Preprocess.from_config(load_config(auto))
    features = {v.name: v for v in preprocess.inputs["pf_features"].vars}
    for name in ("part_pt_log", "part_logptrel", "part_d0", "part_pxrel"):
        assert params[name]["center"] not in (None, "auto")
        assert features[name].center == params[name]["center"]
        assert features[name].scale == params[name]["scale"]
    assert params["part_mask"]["center"] is None  # weaver leaves masks alone
    ours = bench.heptagon_tensors(load_config(auto), jet_files)
    pf = ours["pf_features"]
    assert np.isclose(np.abs(pf), 5.0).any()  # clipping happened
    counts = ours["mask:pf_features"][:, 0].sum(axis=1).astype(int)
    short = int(np.argmax(counts < pf.shape[2]))
    assert counts[short] < pf.shape[2]
    n = counts[short]  # wrap: the slots after the particles repeat them
    np.testing.assert_array_equal(
        pf[short, :, n : 2 * n][:, : pf.shape[2] - n], pf[short, :, : min(n, pf.shape[2] - n)]
    )


def test_heptagons_own_auto_is_weavers(jet_files: list[Path], tmp_path: Path) -> None:
    """heptagon's own ``auto`` (``compute_preprocess``, the files as explicit training
    files) gives weaver's ``AutoStandardizer`` numbers for every auto variable, and so
    weaver's tensors."""
    config = ROOT / "tests" / "data" / "weaver" / "jetclass_full_auto.yaml"
    result = bench.auto_standardisation(config, jet_files, tmp_path)
    spec = load_config(config)
    auto = {v.name for g in spec.inputs.values() for v in g.vars if v.is_auto}
    assert len(auto) == 8  # part_pt_log ... part_pxrel
    assert set(result["params"]) == auto
    for name, params in result["params"].items():
        (center, scale), (w_center, w_scale) = params["heptagon"], params["weaver"]
        assert center == pytest.approx(w_center, rel=1e-6, abs=1e-12), name
        assert scale == pytest.approx(w_scale, rel=1e-6), name
        assert scale != 1.0, name  # computed, not the zero-width fallback
    assert result["max_rel_diff"] <= 1e-6
    assert set(result["max_abs_diff"]) == set(spec.inputs)
    assert {k: v for k, v in result["max_abs_diff"].items() if not v <= 1e-6} == {}
