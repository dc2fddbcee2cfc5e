"""The streaming loader: shapes, masks, values, bucketing, split, weights, sharding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import torch
from jetfiles import N_PER_SHARD, make_jets, write_parquet

from heptagon.data.config import DataConfig, load_config
from heptagon.data.loader import Batch, JetDataset, make_dataloader
from heptagon.data.preprocess import Preprocess, compute_preprocess
from heptagon.data.split import Split

LENGTH = 40

JET_CONFIG: dict[str, Any] = {
    "selection": "jet_pt > 550",
    "inputs": {
        "pf_points": {"length": LENGTH, "vars": ["part_deta", "part_dphi"]},
        "pf_features": {
            "length": LENGTH,
            "vars": [
                ["part_pt_log", 1.7, 0.7],
                {"name": "part_logerel", "center": -4.0, "scale": 0.5, "clip": [-1, 1]},
                {"name": "part_d0", "pad_value": -9},
            ],
        },
        "jet": {"vars": ["jet_pt", "jet_sdmass"]},
    },
    "labels": ["label_QCD", "label_Tbqq"],
    "observers": ["event", "jet_nparticles"],
}


@pytest.fixture(scope="module")
def config() -> DataConfig:
    return load_config(JET_CONFIG)


@pytest.fixture(scope="module")
def preprocess(config: DataConfig) -> Preprocess:
    return Preprocess.from_config(config)


def collect(dataset: JetDataset) -> list[Batch]:
    return list(dataset)


def test_batch_shapes_masks_and_values(
    config: DataConfig, preprocess: Preprocess, jet_dataset: Path, jet_shards: dict
) -> None:
    path = jet_dataset / "shards" / "qcd_000.parquet"
    ds = JetDataset(
        path,
        config,
        preprocess,
        split=None,
        batch_size=32,
        shuffle=False,
        bucketing=False,
        buffer_size=64,
    )
    batches = collect(ds)
    jets = jet_shards["qcd_000"]
    selected = np.flatnonzero(jets["jet_pt"] > 550)
    assert sum(len(b) for b in batches) == len(selected)
    first = batches[0]
    assert first.inputs["pf_points"].shape == (32, 2, LENGTH)
    assert first.inputs["pf_features"].shape == (32, 3, LENGTH)
    assert first.inputs["jet"].shape == (32, 2)
    assert first.masks["pf_points"].shape == (32, 1, LENGTH)
    assert first.inputs["pf_features"].dtype == torch.float32
    assert first.label.dtype == torch.int64
    assert first.weight.dtype == torch.float32
    assert set(first.masks) == {"pf_points", "pf_features"}
    assert first.observers["event"].tolist() == selected[:32].tolist()  # order kept

    i = selected[3]
    n = min(int(jets["jet_nparticles"][i]), LENGTH)
    px, py = ak.to_numpy(jets["part_px"][i]), ak.to_numpy(jets["part_py"][i])
    energy = ak.to_numpy(jets["part_energy"][i])
    row = first.inputs["pf_features"][3].numpy()
    np.testing.assert_allclose(row[0, :n], ((np.log(np.hypot(px, py)) - 1.7) * 0.7)[:n], rtol=1e-5)
    logerel = np.clip((np.log(energy / jets["jet_energy"][i]) + 4.0) * 0.5, -1, 1)
    np.testing.assert_allclose(row[1, :n], logerel[:n], rtol=1e-5)
    np.testing.assert_allclose(
        row[2, :n], np.tanh(ak.to_numpy(jets["part_d0val"][i]))[:n], rtol=1e-5
    )
    assert (row[:2, n:] == 0).all()
    assert (row[2, n:] == -9).all()
    mask = first.masks["pf_features"][3, 0].numpy()
    assert mask[:n].tolist() == [1.0] * n
    assert mask[n:].sum() == 0
    np.testing.assert_allclose(
        first.inputs["jet"][3].numpy(), [jets["jet_pt"][i], jets["jet_sdmass"][i]]
    )
    assert first.label.tolist() == [0] * 32


def test_bucketing_pads_less_than_fixed_length(
    config: DataConfig, preprocess: Preprocess, jet_dataset: Path
) -> None:
    def slots(bucketing: bool) -> tuple[int, int, int]:
        ds = JetDataset(
            jet_dataset,
            config,
            preprocess,
            split=None,
            batch_size=16,
            bucketing=bucketing,
            buffer_size=128,
        )
        padded = real = jets = 0
        for batch in ds:
            mask = batch.masks["pf_features"]
            padded += mask.numel()
            real += int(mask.sum())
            jets += len(batch)
            assert mask.shape[2] == int(mask.sum(dim=2).max()) or not bucketing
        return padded, real, jets

    fixed, real_fixed, jets_fixed = slots(False)
    bucketed, real_bucketed, jets_bucketed = slots(True)
    assert (real_fixed, jets_fixed) == (real_bucketed, jets_bucketed)
    fraction_fixed = 1 - real_fixed / fixed
    fraction_bucketed = 1 - real_bucketed / bucketed
    print(f"padded slots: fixed length {fraction_fixed:.1%}, bucketed {fraction_bucketed:.1%}")
    assert fraction_bucketed < 0.5 * fraction_fixed


def test_root_and_parquet_copies_give_identical_batches(
    config: DataConfig, preprocess: Preprocess, jet_dataset: Path, jet_root_files: Path
) -> None:
    kw = {"batch_size": 20, "buffer_size": 100, "chunk_size": 50, "seed": 3}
    parquet = collect(JetDataset(jet_dataset, config, preprocess, **kw))
    root = collect(JetDataset(jet_root_files, config, preprocess, **kw))
    assert len(parquet) == len(root) > 3
    for a, b in zip(parquet, root, strict=True):
        for group in a.inputs:
            assert torch.equal(a.inputs[group], b.inputs[group])
        for group in a.masks:
            assert torch.equal(a.masks[group], b.masks[group])
        assert torch.equal(a.label, b.label)
        assert a.observers["event"].tolist() == b.observers["event"].tolist()


def events_of(ds: JetDataset) -> set[tuple[str, int]]:
    out = set()
    for batch in ds:
        label = batch.label.numpy()
        for event, lab in zip(batch.observers["event"], label, strict=True):
            out.add((int(lab), int(event)))
    return out


def test_split_is_deterministic_disjoint_complete_and_stable(
    preprocess: Preprocess, jet_dataset: Path, tmp_path: Path
) -> None:
    config = load_config({**JET_CONFIG, "selection": None})
    files = sorted((jet_dataset / "shards").glob("qcd_*.parquet"))

    def split(name: str, paths: list[Path], **kw: Any) -> set:
        return events_of(
            JetDataset(paths, config, preprocess, split=name, batch_size=16, buffer_size=64, **kw)
        )

    # key the entries by (file, event): observers carry the event, labels are all QCD, so
    # use one file at a time
    one = files[:1]
    train, val, test = (split(s, one) for s in ("train", "val", "test"))
    assert not (train & val)
    assert not (train & test)
    assert not (val & test)
    assert len(train | val | test) == N_PER_SHARD
    assert 0.5 < len(train) / N_PER_SHARD < 0.9
    assert split("train", one, seed=99, files_at_once=1) == train  # order-independent
    # adding a file does not move the entries of the others
    extra = write_parquet(tmp_path / "extra.parquet", make_jets(50, "QCD", 42))
    both = JetDataset(
        [*one, extra],
        config,
        preprocess,
        split="val",
        batch_size=16,
        buffer_size=64,
        shuffle=False,
        bucketing=False,
        files_at_once=1,
    )
    events = [int(e) for b in both for e in b.observers["event"]]
    from_first = sorted(events[: len(val)])
    assert sorted(e for _, e in val) == from_first
    # the rule itself
    mask = Split().mask("val", "qcd_000", np.arange(N_PER_SHARD))
    assert sorted(e for _, e in val) == np.flatnonzero(mask).tolist()


def test_split_without_event_branch_uses_row_index(tmp_path: Path) -> None:
    jets = make_jets(90, "QCD", 8)
    del jets["event"]
    path = write_parquet(tmp_path / "noevent.parquet", jets, row_group_size=30)
    config = load_config({"inputs": {"jet": {"vars": ["jet_pt"]}}, "observers": ["jet_pt"]})
    pre = Preprocess.from_config(config)
    got = []
    for name in ("train", "val", "test"):
        ds = JetDataset(
            path,
            config,
            pre,
            split=name,
            batch_size=8,
            buffer_size=8,
            shuffle=False,
            bucketing=False,
            chunk_size=7,
            files_at_once=1,
        )
        got.append(np.concatenate([b.observers["jet_pt"] for b in ds]))
    assert sum(len(g) for g in got) == 90
    expected = jets["jet_pt"][Split().mask("test", "noevent", np.arange(90))]
    assert got[2].tolist() == expected.tolist()


def test_precomputed_weights_reach_batches(tmp_path: Path) -> None:
    jets = make_jets(60, "QCD", 9)
    jets["weight"] = np.linspace(0.5, 2.0, 60).astype(np.float32)
    path = write_parquet(tmp_path / "w.parquet", jets)
    config = load_config(
        {
            "inputs": {"jet": {"vars": ["jet_pt"]}},
            "labels": ["label_QCD", "label_Tbqq"],
            "observers": ["event"],
            "weights": {"use_precomputed_weights": True, "weight_branches": ["weight", "2"]},
        }
    )
    ds = JetDataset(
        path, config, Preprocess.from_config(config), split=None, batch_size=7, buffer_size=14
    )
    for batch in ds:
        expected = 2 * jets["weight"][batch.observers["event"]]
        np.testing.assert_allclose(batch.weight.numpy(), expected)


def test_flat_reweighting_reaches_batches(jet_dataset: Path) -> None:
    config = load_config(
        {
            "inputs": {"jet": {"vars": ["jet_pt"]}},
            "labels": ["label_QCD", "label_Tbqq"],
            "observers": ["jet_sdmass"],
            "weights": {
                "reweight_vars": {"jet_pt": [500, 750, 1000], "jet_sdmass": [0, 150, 300]},
                "class_weights": [1, 3],
                "reweight_classes": ["label_QCD", "label_Tbqq"],
            },
        }
    )
    pre = compute_preprocess(jet_dataset, config)
    assert pre.reweight is not None
    ds = JetDataset(jet_dataset, config, pre, split="train", batch_size=32, buffer_size=64)
    weights, labels = [], []
    for batch in ds:
        weights.append(batch.weight.numpy())
        labels.append(batch.label.numpy())
    w, lab = np.concatenate(weights), np.concatenate(labels)
    assert len(np.unique(w)) > 2
    assert w.sum() / len(w) == pytest.approx(1.0, rel=1e-3)  # same sample as the tables
    assert w[lab == 1].sum() / w[lab == 0].sum() == pytest.approx(3.0, rel=1e-3)


def test_workers_and_ranks_share_the_data_without_overlap(
    config: DataConfig, preprocess: Preprocess, jet_dataset: Path
) -> None:
    ds = JetDataset(
        jet_dataset, config, preprocess, split=None, batch_size=16, buffer_size=32, chunk_size=25
    )
    single = events_of(ds)
    loader = make_dataloader(ds, num_workers=2)
    seen: list[tuple[int, int]] = []
    for batch in loader:
        assert isinstance(batch, Batch)
        seen += [
            (int(lab), int(e)) for lab, e in zip(batch.label, batch.observers["event"], strict=True)
        ]
    # two QCD files share event numbers: compare multisets via counts
    assert len(seen) == sum(1 for _ in seen)
    assert set(seen) == single


def test_epochs_reshuffle_reproducibly(
    config: DataConfig, preprocess: Preprocess, jet_dataset: Path
) -> None:
    def order(epoch: int) -> list[int]:
        ds = JetDataset(jet_dataset, config, preprocess, batch_size=16, buffer_size=48)
        ds.set_epoch(epoch)
        return [int(e) for b in ds for e in b.observers["event"]]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == sorted(order(1))


def test_in_memory_mode_matches_streaming(
    config: DataConfig, preprocess: Preprocess, jet_dataset: Path
) -> None:
    ds = JetDataset(jet_dataset, config, preprocess, batch_size=16, in_memory=True)
    first = events_of(ds)
    assert ds._memory is not None
    assert events_of(ds) == first  # second epoch from memory
    streamed = events_of(JetDataset(jet_dataset, config, preprocess, batch_size=16))
    assert first == streamed


def test_wrap_padding(jet_dataset: Path) -> None:
    config = load_config(
        {"inputs": {"p": {"length": 70, "pad_mode": "wrap", "vars": ["part_deta"]}}}
    )
    ds = JetDataset(
        jet_dataset / "shards" / "qcd_000.parquet",
        config,
        Preprocess.from_config(config),
        split=None,
        batch_size=8,
        shuffle=False,
        bucketing=False,
    )
    batch = next(iter(ds))
    x, mask = batch.inputs["p"][:, 0].numpy(), batch.masks["p"][:, 0].numpy()
    for row, m in zip(x, mask, strict=True):
        n = int(m.sum())
        np.testing.assert_array_equal(row[n:], np.resize(row[:n], 70)[n:])


def test_nanoaod_event_level_features(nanoaod_file: Path) -> None:
    config = load_config(
        {
            "treename": "Events",
            "selection": "(nJet >= 2) & (MET_pt > 5)",
            "new_variables": {
                "ht": "sum(Jet_pt)",
                "lead_jet_pt": "at(Jet_pt, 0, 0)",
                "n_bjets": "sum(Jet_btag > 0.5)",
                "mu_pt_max": "max(Muon_pt, 0)",
                "dphi_met_j1": "abs(delta_phi(at(Jet_phi, 0, 0), MET_phi))",
                "jet_rel_pt": "Jet_pt / ht",
            },
            "inputs": {
                "jets": {
                    "length": 4,
                    "vars": ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_btag", "jet_rel_pt"],
                },
                "event": {
                    "vars": [
                        "ht",
                        "lead_jet_pt",
                        "n_bjets",
                        "mu_pt_max",
                        "nMuon",
                        "MET_pt",
                        "dphi_met_j1",
                    ]
                },
            },
            "labels": {"has_muon": "nMuon > 0", "no_muon": "nMuon == 0"},
            "weights": {"use_precomputed_weights": True, "weight_branches": ["genWeight"]},
            "observers": ["event"],
        }
    )
    import uproot

    with uproot.open(nanoaod_file) as f:
        events = f["Events"].arrays()
    ds = JetDataset(
        nanoaod_file,
        config,
        Preprocess.from_config(config),
        split=None,
        batch_size=500,
        shuffle=False,
        bucketing=False,
    )
    (batch,) = list(ds)
    sel = (events.nJet >= 2) & (events.MET_pt > 5)
    ev = events[sel]
    assert len(batch) == int(ak.sum(sel))
    assert batch.inputs["jets"].shape == (len(batch), 5, 4)
    flat = batch.inputs["event"].numpy()
    np.testing.assert_allclose(flat[:, 0], ak.sum(ev.Jet_pt, axis=1), rtol=1e-5)
    np.testing.assert_allclose(flat[:, 1], ev.Jet_pt[:, 0], rtol=1e-6)
    np.testing.assert_allclose(flat[:, 3], ak.fill_none(ak.max(ev.Muon_pt, axis=1), 0))
    np.testing.assert_allclose(flat[:, 4], ev.nMuon)
    assert (flat[:, 6] <= np.pi).all()
    np.testing.assert_allclose(batch.masks["jets"][:, 0].sum(1).numpy(), np.minimum(ev.nJet, 4))
    np.testing.assert_allclose(batch.weight.numpy(), ev.genWeight)
    assert batch.label.numpy().tolist() == ak.to_numpy(ev.nMuon == 0).astype(int).tolist()
    assert batch.observers["event"].tolist() == ev.event.tolist()


@pytest.mark.parametrize("fixture", ["top_landscape_file", "qg_file"])
def test_benchmark_layouts_through_the_loader(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    labels = (
        ["label_QCD", "label_Tbqq"] if fixture == "top_landscape_file" else ["label_q", "label_g"]
    )
    config = load_config(
        {
            "inputs": {
                "pf_points": {"length": 30, "vars": ["part_deta", "part_dphi"]},
                "pf_features": {
                    "length": 30,
                    "vars": [
                        {"name": "part_pt_log", "center": "auto", "scale": "auto"},
                        "part_logerel",
                        "part_deltaR",
                    ],
                },
            },
            "labels": labels,
        }
    )
    pre = compute_preprocess(path, config)
    var = pre.inputs["pf_features"].vars[0]
    assert var.auto
    assert var.scale > 0
    batches = list(JetDataset(path, config, pre, split=None, batch_size=8))
    assert sum(len(b) for b in batches) == {"top_landscape_file": 40, "qg_file": 50}[fixture]
    labels_seen = np.concatenate([b.label.numpy() for b in batches])
    assert set(labels_seen.tolist()) == {0, 1}
    for b in batches:
        assert torch.isfinite(b.inputs["pf_features"]).all()


def test_round_trip_from_a_generated_sample(top_qcd_sample: Path) -> None:
    config = load_config(
        {
            "inputs": {
                "pf_points": {"length": 64, "vars": ["part_deta", "part_dphi"]},
                "pf_features": {
                    "length": 64,
                    "vars": [
                        {"name": "part_pt_log", "center": "auto", "scale": "auto"},
                        {"name": "part_e_log", "center": "auto", "scale": "auto"},
                        "part_logptrel",
                        "part_logerel",
                        "part_deltaR",
                        "part_charge",
                        "part_isChargedHadron",
                        "part_isNeutralHadron",
                        "part_isPhoton",
                        "part_isElectron",
                        "part_isMuon",
                        "part_d0",
                        "part_d0err",
                        "part_dz",
                        "part_dzerr",
                    ],
                },
                "pf_vectors": {
                    "length": 64,
                    "vars": ["part_px", "part_py", "part_pz", "part_energy"],
                },
            },
            "labels": ["label_QCD", "label_Tbqq"],
            "observers": ["jet_pt", "jet_sdmass"],
        }
    )
    pre = compute_preprocess(top_qcd_sample, config)
    ds = JetDataset(top_qcd_sample, config, pre, split="train", batch_size=64)
    n, classes = 0, set()
    for batch in ds:
        n += len(batch)
        classes |= set(batch.label.tolist())
        assert batch.inputs["pf_features"].shape[1:2] == (15,)
        assert batch.inputs["pf_vectors"].shape[1] == 4
        real = batch.masks["pf_features"]
        assert (batch.inputs["pf_features"] * (1 - real) == 0).all()  # padding is pad_value
        assert torch.isfinite(batch.inputs["pf_features"]).all()
    assert classes == {0, 1}
    assert 0.6 * 600 < n < 0.8 * 600


def test_batch_tensors_name_masks_as_models_take_them() -> None:
    import torch

    from heptagon.data.loader import Batch, mask_name

    mask = torch.ones(2, 1, 3)
    batch = Batch(
        inputs={"pf_points": torch.zeros(2, 2, 3), "pf_features": torch.zeros(2, 4, 3)},
        masks={"pf_points": mask, "pf_features": mask},
        label=None,
        weight=torch.ones(2),
    )
    assert mask_name("sv_features") == "sv_mask"
    assert set(batch.tensors()) == {"pf_points", "pf_features", "pf_mask"}
    assert batch.tensors()["pf_mask"] is mask
