"""Physics augmentation (heptagon.data.augment): what each operation keeps, determinism
per seed, the training split only, and the config key."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from heptagon.cli import app
from heptagon.data import JetDataset, compute_preprocess, load_config
from heptagon.data.augment import (
    MOMENTUM_BRANCHES,
    AugmentSpec,
    SoftSpec,
    augment_arrays,
    boost_along_axis,
    collinear_split,
    jet_momenta,
    reflect,
    rotate_about_axis,
    soft_split,
)
from heptagon.errors import ConfigError
from heptagon.generate.jets import substructure
from heptagon.train.experiment import load_experiment

SHIPPED = Path(__file__).parents[2] / "src" / "heptagon" / "configs"
#: the anti-kT radius of the top-vs-qcd sample's jets (for soft drop)
RADIUS = 0.8


@pytest.fixture(scope="module")
def top_arrays(top_qcd_sample: Path) -> ak.Array:
    return ak.from_parquet(top_qcd_sample / "shards" / "Tbqq_0000.parquet")


@pytest.fixture(scope="module")
def jets(top_arrays: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """(four-momenta (n, 4) float64, counts) of the sample's first 150 top jets."""
    counts = np.asarray(ak.num(top_arrays.part_px, axis=1))
    p = np.stack([np.asarray(ak.flatten(top_arrays[b]), np.float64) for b in MOMENTUM_BRANCHES], 1)
    return p, counts


def mass(jet: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(jet[:, 3] ** 2 - np.sum(jet[:, :3] ** 2, axis=1), 0.0))


def pt(p: np.ndarray) -> np.ndarray:
    return np.hypot(p[:, 0], p[:, 1])


def rapidity(p: np.ndarray) -> np.ndarray:
    return 0.5 * np.log((p[:, 3] + p[:, 2]) / (p[:, 3] - p[:, 2]))


def sd_mass(p: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return substructure(counts, *(p[:, k].copy() for k in range(4)), RADIUS)["jet_sdmass"]


def minkowski_pairs(p: np.ndarray) -> np.ndarray:
    return p[:, None, 3] * p[None, :, 3] - p[:, :3] @ p[:, :3].T


def test_rotation_about_the_axis_keeps_the_jet(jets: tuple[np.ndarray, np.ndarray]) -> None:
    p, counts = jets
    angles = np.random.default_rng(1).uniform(0, 2 * np.pi, len(counts))
    rotated = rotate_about_axis(p, counts, angles)
    before, after = jet_momenta(p, counts), jet_momenta(rotated, counts)
    np.testing.assert_allclose(after, before, rtol=1e-9, atol=1e-6)  # mass, pT, direction
    assert 150 < mass(after).mean() < 200  # top jets
    assert np.abs(rotated - p).max() > 1.0  # the constituents move (GeV)
    np.testing.assert_allclose(rotate_about_axis(rotated, counts, -angles), p, atol=1e-8)
    first = slice(0, counts[0])
    np.testing.assert_allclose(
        minkowski_pairs(rotated[first]), minkowski_pairs(p[first]), rtol=1e-9, atol=1e-6
    )


@pytest.mark.parametrize("which", ["rapidity", "phi", "both"])
def test_reflections_are_involutions_that_keep_the_jet(
    jets: tuple[np.ndarray, np.ndarray], which: str
) -> None:
    p, counts = jets
    in_y = np.full(len(counts), which in ("rapidity", "both"))
    in_phi = np.full(len(counts), which in ("phi", "both"))
    once = reflect(p, counts, in_y, in_phi)
    assert np.abs(once - p).max() > 1.0
    np.testing.assert_allclose(reflect(once, counts, in_y, in_phi), p, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(jet_momenta(once, counts), jet_momenta(p, counts), atol=1e-6)
    np.testing.assert_allclose(pt(once), pt(p), rtol=1e-9, atol=1e-9)
    # soft-drop mass depends only on pT and (y, phi) distances: kept
    np.testing.assert_allclose(sd_mass(once, counts), sd_mass(p, counts), rtol=1e-4, atol=1e-3)
    if which == "rapidity":  # y -> 2 y_J - y for every constituent
        y_jet = np.repeat(rapidity(jet_momenta(p, counts)), counts)
        np.testing.assert_allclose(rapidity(once), 2 * y_jet - rapidity(p), atol=1e-6)


def test_reflection_only_where_asked(jets: tuple[np.ndarray, np.ndarray]) -> None:
    p, counts = jets
    chosen = np.arange(len(counts)) % 2 == 0
    out = reflect(p, counts, chosen, np.zeros(len(counts), bool))
    rows = np.repeat(chosen, counts)
    np.testing.assert_array_equal(out[~rows], p[~rows])
    assert np.abs(out[rows] - p[rows]).max() > 1.0


def test_boost_along_the_axis_keeps_mass_and_direction(
    jets: tuple[np.ndarray, np.ndarray],
) -> None:
    p, counts = jets
    rapidities = np.linspace(-0.1, 0.1, len(counts))
    boosted = boost_along_axis(p, counts, rapidities)
    before, after = jet_momenta(p, counts), jet_momenta(boosted, counts)
    np.testing.assert_allclose(mass(after), mass(before), rtol=1e-6)
    direction = before[:, :3] / np.linalg.norm(before[:, :3], axis=1, keepdims=True)
    np.testing.assert_allclose(
        after[:, :3] / np.linalg.norm(after[:, :3], axis=1, keepdims=True), direction, atol=1e-9
    )
    # |p| -> |p| cosh w + E sinh w: more momentum for w > 0, less for w < 0
    norm = np.linalg.norm(before[:, :3], axis=1)
    expected = norm * np.cosh(rapidities) + before[:, 3] * np.sinh(rapidities)
    np.testing.assert_allclose(np.linalg.norm(after[:, :3], axis=1), expected, rtol=1e-9)
    first = slice(0, counts[0])
    np.testing.assert_allclose(
        minkowski_pairs(boosted[first]), minkowski_pairs(p[first]), rtol=1e-7, atol=1e-5
    )


def test_collinear_split_keeps_the_jet_and_soft_drop_mass(
    jets: tuple[np.ndarray, np.ndarray],
) -> None:
    p, counts = jets
    rng = np.random.default_rng(2)
    chosen = rng.random(len(p)) < 0.3
    out, new_counts, parent = collinear_split(p, counts, chosen, rng.random(len(p)))
    np.testing.assert_array_equal(
        new_counts - counts, np.add.reduceat(chosen, np.r_[0, np.cumsum(counts)[:-1]])
    )
    assert len(out) == len(p) + chosen.sum()
    np.testing.assert_allclose(jet_momenta(out, new_counts), jet_momenta(p, counts), atol=1e-6)
    np.testing.assert_allclose(sd_mass(out, new_counts), sd_mass(p, counts), rtol=1e-5, atol=1e-3)
    # daughters point where their parent does
    cos = np.sum(out[:, :3] * p[parent, :3], 1) / (
        np.linalg.norm(out[:, :3], axis=1) * np.linalg.norm(p[parent, :3], axis=1)
    )
    np.testing.assert_allclose(cos, 1.0, atol=1e-9)


def test_soft_emissions_keep_energy_and_change_safe_observables_little(
    jets: tuple[np.ndarray, np.ndarray],
) -> None:
    p, counts = jets
    rng = np.random.default_rng(3)
    chosen = rng.random(len(p)) < 0.5
    z = 1e-3 * rng.random(len(p))
    offsets = rng.uniform(-0.07, 0.07, (len(p), 2))
    out, new_counts, _ = soft_split(p, counts, chosen, z, offsets)
    assert (new_counts > counts).all()
    before, after = jet_momenta(p, counts), jet_momenta(out, new_counts)
    np.testing.assert_allclose(after[:, 3], before[:, 3], rtol=1e-12)
    emitted = np.ones(len(out), bool)
    emitted[np.r_[0, np.cumsum(new_counts)[:-1]]] = True  # first rows are never emissions
    # IRC safety: a relative change of the order of the emitted fraction
    np.testing.assert_allclose(mass(after), mass(before), rtol=1e-2)
    sd_before, sd_after = sd_mass(p, counts), sd_mass(out, new_counts)
    assert np.median(np.abs(sd_after - sd_before) / sd_before) < 1e-2
    # while a hard emission (half the energy, far away) changes the jet
    hard, hard_counts, _ = soft_split(p, counts, chosen, np.full(len(p), 0.5), offsets * 10)
    assert np.median(np.abs(mass(jet_momenta(hard, hard_counts)) - mass(before))) > 5.0


def test_same_seed_same_augmentation(top_arrays: ak.Array) -> None:
    spec = AugmentSpec(
        rotate=True,
        reflect=True,
        boost=0.1,
        collinear_split=0.1,
        soft=SoftSpec(probability=0.1, fraction=1e-3),
    )
    a = augment_arrays(top_arrays, spec, np.random.default_rng(5))
    b = augment_arrays(top_arrays, spec, np.random.default_rng(5))
    c = augment_arrays(top_arrays, spec, np.random.default_rng(6))
    assert ak.all(ak.flatten(a.part_px) == ak.flatten(b.part_px))
    assert ak.all(a.jet_nparticles == b.jet_nparticles)
    assert not ak.all(ak.num(a.part_px) == ak.num(c.part_px))
    assert ak.all(a.jet_nparticles == ak.num(a.part_px))
    # every other per-particle branch follows its particle
    assert ak.all(ak.num(a.part_charge) == ak.num(a.part_px))
    assert set(a.fields) == set(top_arrays.fields)


def test_recomputed_branches_are_the_files_definitions(top_arrays: ak.Array) -> None:
    """With nothing on, the recomputed kinematics equal the stored ones (float32)."""
    out = augment_arrays(top_arrays, AugmentSpec(), np.random.default_rng(0))
    for name in ("part_deta", "part_dphi", "part_px", "part_charge"):
        np.testing.assert_allclose(
            ak.to_numpy(ak.flatten(out[name])),
            ak.to_numpy(ak.flatten(top_arrays[name])),
            atol=2e-4,
        )
    for name in ("jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_nparticles", "jet_sdmass"):
        np.testing.assert_allclose(
            ak.to_numpy(out[name]), ak.to_numpy(top_arrays[name]), rtol=1e-4, atol=1e-4
        )


def _dataset(
    sample: Path, spec: AugmentSpec | None, seed: int = 0, split: str = "train"
) -> JetDataset:
    config = load_config(SHIPPED / "data" / "top_kinematic.yaml")
    preprocess = compute_preprocess(sample, config)
    return JetDataset(
        sample, config, preprocess, split=split, batch_size=64, shuffle=False, seed=seed,
        augment=spec,
    )  # fmt: skip


def _first_batch(dataset: JetDataset, epoch: int = 0) -> torch.Tensor:
    dataset.set_epoch(epoch)
    return next(iter(dataset)).inputs["pf_features"]


def test_training_batches_are_augmented_per_seed_and_epoch(top_qcd_sample: Path) -> None:
    spec = AugmentSpec(rotate=True)
    plain = _first_batch(_dataset(top_qcd_sample, None))
    first = _first_batch(_dataset(top_qcd_sample, spec))
    again = _first_batch(_dataset(top_qcd_sample, spec))
    later = _first_batch(_dataset(top_qcd_sample, spec), epoch=1)
    other = _first_batch(_dataset(top_qcd_sample, spec, seed=1))
    assert first.shape == plain.shape  # the same jets
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, plain)
    assert not torch.equal(first, later)
    assert not torch.equal(first, other)
    # a rotation about the jet axis keeps each energy (log E, log E/E_jet: features 3, 5)
    # and moves (deta, dphi)
    for index in (3, 5):
        torch.testing.assert_close(first[:, index], plain[:, index], atol=1e-4, rtol=1e-4)
    assert (first[:, :2] - plain[:, :2]).abs().max() > 0.1


@pytest.mark.parametrize("split", ["val", "test", None])
def test_only_the_training_split_is_augmented(top_qcd_sample: Path, split: str | None) -> None:
    with pytest.raises(ValueError, match="training split only"):
        _dataset(top_qcd_sample, AugmentSpec(rotate=True), split=split)  # type: ignore[arg-type]


def test_inactive_spec_is_no_augmentation(top_qcd_sample: Path) -> None:
    torch.testing.assert_close(
        _first_batch(_dataset(top_qcd_sample, AugmentSpec(), split="val")),
        _first_batch(_dataset(top_qcd_sample, None, split="val")),
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.augment.boost=2", "train.augment.boost"),
        ("train.augment.collinear_split=-0.1", "train.augment.collinear_split"),
        ("train.augment.spin=true", "train.augment.spin"),
        ("train.augment.soft.fraction=0.01", "train.augment.soft.probability"),
        ("train.augment.soft.probability=0.1", None),
    ],
)
def test_bad_augment_keys_are_named(override: str, key: str | None) -> None:
    path = SHIPPED / "top_lorentznet.yaml"
    if key is None:
        spec = load_experiment(path, [override]).train.augment
        assert spec is not None
        assert spec.soft is not None
        assert spec.soft.fraction == 0.01
        return
    with pytest.raises(ConfigError) as err:
        load_experiment(path, [override])
    assert err.value.key == key


@pytest.mark.parametrize("name", ["top_pfn_aug"])
def test_shipped_augmented_configs_train_through_the_cli(
    top_qcd_sample: Path, tmp_path: Path, name: str
) -> None:
    spec = load_experiment(SHIPPED / f"{name}.yaml").train.augment
    assert spec is not None
    assert spec.active
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train", str(SHIPPED / f"{name}.yaml"), "--data", str(top_qcd_sample),
            "--out", str(out), "--threads", "1",
            "--set", "train.epochs=1", "--set", "train.progress=false",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "augment" in (out / "config.yaml").read_text()
