"""Named variations in generated samples: shape variations from the same generator events,
the parton-shower weight columns, the alternative tune, and the refusals."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heptagon.artifacts.manifest import EventManifest, load_manifest
from heptagon.errors import ConfigError
from heptagon.generate.events import EventOptions, generate_events
from heptagon.generate.options import GenerateOptions
from heptagon.physics.systematics import weight_variations

COLUMNS = [v.column for v in weight_variations()]


def dy(out: Path, variation: str | None = None, events: int = 100) -> ak.Array:
    """A Drell-Yan event sample (no MPI, seed 3, one shard) with the shower weights."""
    generate_events(
        EventOptions(sample="dy", events=events, seed=3, out=out, mpi=False,
                     weight_variations=True, variation=variation),
        show_progress=False,
    )  # fmt: skip
    return ak.from_parquet(next((out / "shards").glob("*.parquet")))


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ak.Array]]:
    root = tmp_path_factory.mktemp("variations")
    return {
        name: (root / name, dy(root / name, None if name == "nominal" else name))
        for name in ("nominal", "jes_hcal_up", "trk_eff_down", "tune_a14")
    }


def test_shape_variations_reuse_the_generator_events(
    samples: dict[str, tuple[Path, ak.Array]],
) -> None:
    _, nominal = samples["nominal"]
    for name in ("jes_hcal_up", "trk_eff_down"):
        _, varied = samples[name]
        assert len(varied) == len(nominal)
        # generator level: the same events, neutrino by neutrino, emission by emission
        np.testing.assert_array_equal(varied["GenMET_pt"], nominal["GenMET_pt"])
        for column in COLUMNS:
            np.testing.assert_array_equal(varied[column], nominal[column])
        # detector level: shifted
        assert not np.array_equal(varied["MET_pt"], nominal["MET_pt"])
    jets = {k: ak.flatten(samples[k][1]["Jet_pt"]) for k in ("nominal", "jes_hcal_up")}
    assert ak.sum(jets["jes_hcal_up"]) > ak.sum(jets["nominal"])


def test_the_manifest_records_the_variation(samples: dict[str, tuple[Path, ak.Array]]) -> None:
    nominal = load_manifest(samples["nominal"][0])
    varied = load_manifest(samples["trk_eff_down"][0])
    assert isinstance(nominal, EventManifest)
    assert isinstance(varied, EventManifest)
    assert nominal.variation is None
    assert varied.variation is not None
    assert varied.variation["name"] == "trk_eff_down"
    assert varied.variation["kind"] == "shape"
    assert varied.variation["source"]
    assert varied.detector is not None
    assert nominal.detector is not None
    assert varied.detector["track_eff_scale"] == pytest.approx(0.95)
    assert nominal.detector["track_eff_scale"] == 1.0
    assert varied.weight_variations == ["isr_up", "isr_down", "fsr_up", "fsr_down"]


def test_shower_weights_are_finite_and_average_one(
    samples: dict[str, tuple[Path, ak.Array]],
) -> None:
    _, nominal = samples["nominal"]
    for column in COLUMNS:
        w = np.asarray(nominal[column])
        assert np.all(np.isfinite(w)), column
        assert np.all(w > 0), column
        assert w.std() > 0, column  # they do vary event by event
        # the mean of a reweighting is 1 up to its statistical error
        assert abs(w.mean() - 1) < max(4 * w.std() / np.sqrt(w.size), 0.02), column


def test_the_alternative_tune_is_a_separate_sample(
    samples: dict[str, tuple[Path, ak.Array]],
) -> None:
    _, nominal = samples["nominal"]
    path, tuned = samples["tune_a14"]
    manifest = load_manifest(path)
    assert manifest.variation is not None
    assert manifest.variation["pythia"] == ["Tune:pp = 21"]
    assert manifest.variation["kind"] == "generator"
    assert len(tuned) == len(nominal)
    assert not np.array_equal(tuned["GenMET_pt"], nominal["GenMET_pt"])


def test_pileup_variation_scales_the_mean(tmp_path: Path) -> None:
    made = {}
    for variation in (None, "pileup_up"):
        out = tmp_path / str(variation)
        generate_events(
            EventOptions(sample="dy", events=40, seed=3, out=out, mpi=False, pileup=40,
                         pileup_library=20, variation=variation),
            show_progress=False,
        )  # fmt: skip
        manifest = load_manifest(out)
        assert manifest.pileup is not None
        shard = next(out.glob("shards/*.parquet"))
        made[variation] = (manifest.pileup["mu"], ak.from_parquet(shard))
    (mu, nominal), (mu_up, varied) = made[None], made["pileup_up"]
    assert mu == 40
    assert mu_up == pytest.approx(40 * 1.046)
    np.testing.assert_array_equal(varied["GenMET_pt"], nominal["GenMET_pt"])
    assert np.mean(varied["PV_npvs"]) > np.mean(nominal["PV_npvs"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"variation": "isr_up"}, "weight variation: use --weight-variations"),
        ({"variation": "pileup_down"}, "needs --pileup"),
        ({"variation": "jes_ecal_up", "detector": "none"}, "needs --detector full"),
        ({"variation": "jes_up"}, "unknown variation 'jes_up'"),
    ],
)
def test_refused_variations(extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GenerateOptions(sample="top-vs-qcd", jets=5, seed=1, out=Path("x"), **extra)  # type: ignore[arg-type]
