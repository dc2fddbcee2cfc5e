"""PELICAN: the score is invariant under padding, permutations of the constituents and
Lorentz transformations of all four-momenta; its aggregation layer is the full space of
permutation-equivariant linear maps of rank-2 arrays; it learns, exports to ONNX and trains
from the shipped config through the CLI (docs/small-data.md, section "PELICAN")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from doc_pages import one_epoch_configs, run_section
from models_helpers import inputs_for, make_batch, n_params, pad, permute
from test_lorentz import lorentz_matrix, transform

from heptagon.errors import ConfigError
from heptagon.models import build_model
from heptagon.models.pelican import PELICAN, Aggregate2to2, expm1

VECTOR_DIMS = {"pf_vectors": 4, "pf_mask": 1}
#: the paper-size model, shrunk where its size does not matter
SMALL_FULL = {"width": 8, "num_layers": 2, "embed_channels": 4}
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "small-data.md"


def _model(name: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    options = SMALL_FULL if name == "pelican" else {}
    model = build_model(name, VECTOR_DIMS, 2, **options)
    assert isinstance(model, PELICAN)
    return model.to(dtype).eval()


def _spread(out: torch.Tensor) -> float:
    return float((out[:, 1] - out[:, 0]).std())


@pytest.mark.parametrize("name", ["pelican", "pelican-lite"])
def test_padding_changes_no_score(name: str) -> None:
    """Extra padded slots (and a jet without particles): the means run over the real
    constituents only, so the scores stay the same."""
    model = _model(name)
    batch = make_batch(6, 9, seed=3, empty_jet=True)
    with torch.no_grad():
        ref = model(*inputs_for(model, batch))
        padded = model(*inputs_for(model, pad(batch, 20)))
    assert torch.isfinite(ref).all()
    assert _spread(ref[1:]) > 1e-4  # the jets get different scores
    torch.testing.assert_close(padded, ref, atol=1e-5, rtol=1e-5)


def test_means_are_over_the_real_constituents() -> None:
    """The check above can fail: a mean over all slots (padding included) would change a
    score when padding is added."""
    block = Aggregate2to2(1, 1).double()
    t = torch.rand(1, 3, 3, 1, dtype=torch.float64)
    padded = torch.nn.functional.pad(t, (0, 0, 0, 2, 0, 2))
    real = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    real_padded = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    three = torch.tensor([[3.0]], dtype=torch.float64)
    with torch.no_grad():
        ref = block(t, real, three)
        torch.testing.assert_close(block(padded, real_padded, three)[:, :3, :3], ref)
        wrong = block(padded, real_padded, three + 2)[:, :3, :3]  # dividing by all 5 slots
    assert (wrong - ref).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["pelican", "pelican-lite"])
def test_particle_order_changes_no_score(name: str) -> None:
    model = _model(name)
    batch = pad(make_batch(6, 10, seed=5), 4)
    with torch.no_grad():
        ref = model(*inputs_for(model, batch))
        for seed in range(3):
            shuffled = model(*inputs_for(model, permute(batch, seed=seed)))
            torch.testing.assert_close(shuffled, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("parity", [False, True])
@pytest.mark.parametrize("name", ["pelican", "pelican-lite"])
def test_score_is_lorentz_invariant_in_float64(name: str, parity: bool) -> None:
    model = _model(name, torch.float64)
    batch = {k: v.double() for k, v in make_batch(6, 9, seed=4).items()}
    boosted = {
        **batch,
        "pf_vectors": transform(batch["pf_vectors"], lorentz_matrix(5, 1.5, parity)),
    }
    with torch.no_grad():
        before = model(*inputs_for(model, batch))
        after = model(*inputs_for(model, boosted))
    assert _spread(before) > 1e-4
    assert (boosted["pf_vectors"] - batch["pf_vectors"]).abs().max() > 1.0  # GeV: it moved
    torch.testing.assert_close(after, before, atol=1e-9, rtol=1e-9)


def test_score_is_lorentz_invariant_in_float32() -> None:
    model = _model("pelican")
    batch = make_batch(8, 12, seed=6)
    with torch.no_grad():
        before = model(*inputs_for(model, batch))
        for seed in range(3):
            vectors = transform(batch["pf_vectors"], lorentz_matrix(seed))
            after = model(vectors, batch["pf_mask"])
            torch.testing.assert_close(after, before, atol=2e-4, rtol=2e-4)


def test_expm1_without_cancellation() -> None:
    """The ONNX-exportable ``exp(x) - 1`` is torch's ``expm1`` to a few float32 ulps from
    1e-9 to 20 (``exp(x) - 1`` itself is wrong by 100% at 1e-8 in float32), with finite
    gradients on both branches."""
    x = torch.logspace(-9, 1.3, 500, dtype=torch.float64)
    ref = torch.expm1(x)
    got = expm1(x.float()).double()
    assert float(((got - ref) / ref).abs().max()) < 2e-6
    naive = torch.exp(x.float()).double() - 1
    assert float(((naive - ref) / ref).abs().max()) > 0.5
    y = torch.tensor([0.0, 0.5, 2.0, 30.0], requires_grad=True)
    expm1(y).sum().backward()
    assert y.grad is not None
    torch.testing.assert_close(y.grad, torch.exp(y.detach()))


def _linear_part(block: Aggregate2to2, n: int) -> torch.Tensor:
    """The ``(n*n, n*n)`` matrix of ``T -> block(T) - block(0)`` for one channel."""
    real, counts = torch.ones(1, n, dtype=torch.float64), torch.tensor([[float(n)]]).double()
    zero = block(torch.zeros(1, n, n, 1, dtype=torch.float64), real, counts)
    basis = torch.eye(n * n, dtype=torch.float64).view(n * n, n, n, 1)
    columns = [block(e.unsqueeze(0), real, counts) - zero for e in basis]
    return torch.stack([c.reshape(-1) for c in columns], dim=1)


def test_aggregation_spans_the_15_equivariant_maps() -> None:
    """Each draw of the weights gives a linear map ``L`` with ``L(P T P^T) = P L(T) P^T``;
    over many draws the maps span 15 dimensions, all the permutation-equivariant linear
    maps of N x N arrays there are (N >= 4; Maron et al. 2019)."""
    torch.manual_seed(0)
    n = 5
    order = torch.tensor([3, 0, 4, 1, 2])
    t = torch.randn(1, n, n, 1, dtype=torch.float64)
    real, counts = torch.ones(1, n, dtype=torch.float64), torch.tensor([[5.0]]).double()
    maps = []
    with torch.no_grad():
        for _ in range(25):
            block = Aggregate2to2(1, 1).double()
            for p in block.parameters():
                p.normal_()
            out = block(t, real, counts)
            moved = block(t[:, order][:, :, order], real, counts)
            torch.testing.assert_close(moved, out[:, order][:, :, order])
            maps.append(_linear_part(block, n).reshape(-1))
    assert int(torch.linalg.matrix_rank(torch.stack(maps))) == 15


def test_sizes() -> None:
    """The lite model is smaller than ParticleNet-Lite; the paper-size one is ~200k."""
    lite = build_model("pelican-lite", VECTOR_DIMS, 2)
    full = build_model("pelican", VECTOR_DIMS, 2)
    assert isinstance(lite, torch.nn.Module)
    assert isinstance(full, torch.nn.Module)
    assert 10_000 < n_params(lite) < 26_000
    assert 150_000 < n_params(full) < 250_000


@pytest.mark.parametrize(
    ("option", "value"), [("width", 0), ("embed_channels", 0), ("momentum_scale", 0.0)]
)
def test_bad_option_is_named(option: str, value: float) -> None:
    with pytest.raises(ConfigError) as err:
        build_model("pelican-lite", VECTOR_DIMS, 2, **{option: value})
    assert err.value.key == f"options.{option}"


def test_learns_from_four_momenta_alone() -> None:
    """256 jets whose classes differ in spread and hardness (so in invariant masses):
    over 95% training accuracy on the jets of two or more particles."""
    torch.manual_seed(0)
    labels = torch.arange(256) % 2
    batch = make_batch(256, 12, seed=11, labels=labels)
    model = build_model("pelican-lite", VECTOR_DIMS, 2, dropout=0.0)
    assert isinstance(model, torch.nn.Module)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(10):
        for idx in torch.randperm(256).split(64):
            sub = {k: v[idx] for k, v in batch.items()}
            loss = torch.nn.functional.cross_entropy(model(*inputs_for(model, sub)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        right = model(*inputs_for(model, batch)).argmax(1) == labels
    several = batch["pf_mask"].sum(dim=(1, 2)) >= 2
    assert right[several].float().mean() > 0.95


def test_the_documented_commands_train_evaluate_and_export(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's commands on the cached sample (as ``top-sample``), the shipped config cut
    to 1 epoch and the 16 hardest constituents; ``heptagon export`` checks ONNX Runtime
    against PyTorch on real jets and writes nothing unless they agree."""
    one_epoch_configs(tmp_path / "configs", "top_pelican.yaml")
    vectors = tmp_path / "configs" / "data" / "top_lorentz.yaml"
    vectors.write_text(vectors.read_text().replace("length: 100", "length: 16"))
    (tmp_path / "top-sample").symlink_to(top_qcd_sample)
    monkeypatch.chdir(tmp_path)
    run_section(PAGE, "PELICAN", "train", "evaluate", "export")
    info = json.loads(Path("runs/pelican/model.json").read_text())
    assert info["name"] == "pelican-lite"
    assert info["input_names"] == ["pf_vectors", "pf_mask"]
    metrics = json.loads(Path("runs/pelican/eval/metrics.json").read_text())
    assert 0.0 <= metrics["auc"]["value"] <= 1.0
    assert Path("runs/pelican/model.onnx").exists()


def test_speed_benchmark_reads_each_models_batches(top_qcd_sample: Path) -> None:
    """benchmarks/lorentz_speed.py's building blocks: every model it times has a shipped
    experiment whose data config gives that model's inputs, read as ``heptagon train``
    reads them (the benchmark itself is too long for the test suite)."""
    import lorentz_speed as bench  # benchmarks/ is on pytest's pythonpath

    for name, experiment in bench.EXPERIMENTS.items():
        shipped = yaml.safe_load((bench.CONFIGS / experiment).read_text())
        assert shipped["data"] == bench.DATA[experiment]
        lite = name if name.endswith("-lite") else f"{name}-lite"  # full size: --set
        assert shipped["model"]["name"] == lite
    (tensors, labels), *rest = bench.batches(top_qcd_sample, "data/top_lorentz.yaml", 2, 8)
    assert len(rest) == 1
    assert tensors["pf_vectors"].shape[:2] == (8, 4)
    assert tensors["pf_mask"].shape == (8, 1, tensors["pf_vectors"].shape[2])
    assert labels.shape == (8,)
