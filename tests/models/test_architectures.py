"""Forward shapes, published parameter counts, and what padding and particle order may not
change."""

from __future__ import annotations

import pytest
import torch
from models_helpers import (
    DIMS,
    TORCH_MODELS,
    close_to,
    inputs_for,
    make_batch,
    n_params,
    pad,
    permute,
    small_model,
)

from heptagon.models import build_model
from heptagon.models.autoencoder import AutoEncoder

JETCLASS = {"pf_points": 2, "pf_features": 17, "pf_vectors": 4, "pf_mask": 1}
TOP = {"pf_points": 2, "pf_features": 7, "pf_vectors": 4, "pf_mask": 1}


@pytest.mark.parametrize(
    ("name", "dims", "num_classes", "published"),
    [
        ("particlenet", JETCLASS, 10, 370e3),
        ("particlenet", TOP, 2, 366e3),
        ("particlenet-lite", TOP, 2, 26e3),
        ("part", JETCLASS, 10, 2.14e6),
        ("pfn", JETCLASS, 10, 86e3),
    ],
)
def test_parameter_counts_match_the_papers(
    name: str, dims: dict[str, int], num_classes: int, published: float
) -> None:
    model = build_model(name, dims, num_classes)
    assert isinstance(model, torch.nn.Module)
    assert close_to(n_params(model), published), n_params(model)


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_forward_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = small_model(name, num_classes=3).eval()
    batch = make_batch(5, 12, seed=1)
    with torch.no_grad():
        out = model(*inputs_for(model, batch))
    n = DIMS["jet_features"]  # a reconstruction (and the VAE's mu, logvar), or the logits
    width = {"autoencoder": n, "vae": n + 2 * 3}.get(name, 3)
    assert out.shape == (5, width)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_regression_head() -> None:
    model = small_model("particlenet-lite", num_classes=1).eval()
    batch = make_batch(4, 10, seed=2)
    assert model(*inputs_for(model, batch)).shape == (4, 1)


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_padding_changes_no_score(name: str) -> None:
    """Extra zero-padded slots, and jets with none or fewer particles than kNN's k."""
    torch.manual_seed(0)
    model = small_model(name, num_classes=3).eval()
    batch = make_batch(6, 9, seed=3, empty_jet=True)
    with torch.no_grad():
        ref = model(*inputs_for(model, batch))
        padded = model(*inputs_for(model, pad(batch, 20)))
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(padded, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["particlenet-lite", "part-lite", "pfn"])
def test_padding_changes_no_batch_statistic(name: str) -> None:
    """BatchNorm statistics in training mode come from real particles (and pairs) only."""
    torch.manual_seed(0)
    options = {
        "particlenet-lite": {"fc_params": ((16, 0.0),)},
        "part-lite": {"dropout": 0.0, "attn_dropout": 0.0, "activation_dropout": 0.0},
        "pfn": {"use_bn": True},
    }[name]
    model = small_model(name, **options).train()
    batch = make_batch(8, 9, seed=4)
    ref = model(*inputs_for(model, batch))
    torch.testing.assert_close(model(*inputs_for(model, pad(batch, 7))), ref)


@pytest.mark.parametrize("name", ["pfn", "particlenet", "particlenet-lite", "part", "part-lite"])
def test_particle_order_changes_no_score(name: str) -> None:
    torch.manual_seed(0)
    model = small_model(name, num_classes=3).eval()
    batch = pad(make_batch(6, 10, seed=5), 4)
    with torch.no_grad():
        ref = model(*inputs_for(model, batch))
        shuffled = model(*inputs_for(model, permute(batch, seed=6)))
    torch.testing.assert_close(shuffled, ref, atol=1e-5, rtol=1e-5)


def test_particlenet_full_size_small_jets() -> None:
    """k = 16 with jets of up to 9 particles: missing neighbours never read padding."""
    torch.manual_seed(0)
    model = build_model("particlenet", DIMS, 2).eval()
    batch = make_batch(4, 9, seed=7, empty_jet=True)
    with torch.no_grad():
        ref = model(*inputs_for(model, batch))
        torch.testing.assert_close(model(*inputs_for(model, pad(batch, 30))), ref)


def test_deepjet_sort_key_and_optional_vertices() -> None:
    torch.manual_seed(0)
    dims = {k: v for k, v in DIMS.items() if not k.startswith("sv_")}
    model = build_model("deepjet", dims, 2, pf_sort_by=0).eval()
    assert model.input_names == ("pf_features", "pf_mask")
    batch = make_batch(5, 8, seed=8)
    with torch.no_grad():
        ref = model(*inputs_for(model, batch))
        # sorted by a key: the input order of the particles does not matter either
        torch.testing.assert_close(model(*inputs_for(model, permute(pad(batch, 3), 9))), ref)


def test_autoencoder_reconstruction_error() -> None:
    model = small_model("autoencoder")
    assert isinstance(model, AutoEncoder)
    x = make_batch(7, 4, seed=10)["jet_features"]
    err = model.reconstruction_error(x)
    assert err.shape == (7,)
    torch.testing.assert_close(err, (model(x) - x).pow(2).mean(1))
