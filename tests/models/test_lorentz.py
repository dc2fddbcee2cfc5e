"""LorentzNet: the score is invariant, and the momenta equivariant, under Lorentz
transformations (boosts, rotations, reflections) of all four-momenta."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_helpers import inputs_for, make_batch

from heptagon.models import build_model
from heptagon.models.lorentz import LorentzBlock, LorentzNet, minkowski

VECTOR_DIMS = {"pf_vectors": 4, "pf_mask": 1}


def lorentz_matrix(seed: int, max_rapidity: float = 1.0, parity: bool = False) -> np.ndarray:
    """A random rotation followed by a boost of random direction and rapidity (and a space
    inversion with ``parity``), acting on (px, py, pz, E) column vectors."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.diag(r))
    if np.linalg.det(rotation) < 0:
        rotation[:, 0] *= -1
    n = rng.normal(size=3)
    n /= np.linalg.norm(n)
    rapidity = rng.uniform(0.3, max_rapidity)
    gamma, beta_gamma = np.cosh(rapidity), np.sinh(rapidity)
    boost = np.eye(4)
    boost[:3, :3] += (gamma - 1) * np.outer(n, n)
    boost[:3, 3] = boost[3, :3] = -beta_gamma * n
    boost[3, 3] = gamma
    spatial = np.eye(4)
    spatial[:3, :3] = -rotation if parity else rotation
    return boost @ spatial


def transform(vectors: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """``(B, 4, P)`` four-vectors, each transformed by ``matrix``."""
    return torch.einsum("ij,bjp->bip", torch.as_tensor(matrix, dtype=vectors.dtype), vectors)


def test_lorentz_matrix_keeps_the_metric() -> None:
    metric = np.diag([-1.0, -1.0, -1.0, 1.0])
    for parity in (False, True):
        m = lorentz_matrix(3, parity=parity)
        np.testing.assert_allclose(m.T @ metric @ m, metric, atol=1e-12)


@pytest.mark.parametrize("parity", [False, True])
@pytest.mark.parametrize("dims", [VECTOR_DIMS, {**VECTOR_DIMS, "pf_features": 7}])
def test_score_is_lorentz_invariant_in_float64(dims: dict[str, int], parity: bool) -> None:
    torch.manual_seed(0)
    model = build_model("lorentznet-lite", dims, 2, c_weight=0.05).double().eval()
    batch = {k: v.double() for k, v in make_batch(6, 9, seed=4).items()}
    boosted = {
        **batch,
        "pf_vectors": transform(batch["pf_vectors"], lorentz_matrix(5, 1.5, parity)),
    }
    with torch.no_grad():
        before = model(*inputs_for(model, batch))
        after = model(*inputs_for(model, boosted))
    assert (before[:, 1] - before[:, 0]).std() > 1e-4  # the jets get different scores
    torch.testing.assert_close(after, before, atol=1e-9, rtol=1e-9)


def test_score_is_lorentz_invariant_in_float32() -> None:
    torch.manual_seed(1)
    model = build_model("lorentznet", VECTOR_DIMS, 2).eval()
    batch = make_batch(8, 12, seed=6)
    for seed in range(3):
        boosted = {**batch, "pf_vectors": transform(batch["pf_vectors"], lorentz_matrix(seed))}
        with torch.no_grad():
            before = model(*inputs_for(model, batch))
            after = model(*inputs_for(model, boosted))
        torch.testing.assert_close(after, before, atol=2e-4, rtol=2e-4)


def test_a_lab_frame_feature_breaks_the_invariance() -> None:
    """The check above can fail: a non-invariant input (pT) changes the score."""
    torch.manual_seed(0)
    model = build_model("lorentznet-lite", {**VECTOR_DIMS, "pf_features": 1}, 2).double().eval()
    batch = {k: v.double() for k, v in make_batch(6, 9, seed=4).items()}
    boosted = transform(batch["pf_vectors"], lorentz_matrix(5, 1.5))

    def pt(v: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(v[:, :1] ** 2 + v[:, 1:2] ** 2)

    with torch.no_grad():
        before = model(batch["pf_vectors"], batch["pf_mask"], pt(batch["pf_vectors"]))
        after = model(boosted, batch["pf_mask"], pt(boosted))
    assert (after - before).abs().max() > 1e-3


def test_momentum_update_is_equivariant() -> None:
    torch.manual_seed(2)
    block = LorentzBlock(8, c_weight=0.1, update_momenta=True).double()
    batch = make_batch(4, 7, seed=8)
    real = batch["pf_mask"].double().transpose(1, 2)
    x = batch["pf_vectors"].double().transpose(1, 2) / 10
    pairs = (real * real.transpose(1, 2) * (1 - torch.eye(7, dtype=torch.float64))).unsqueeze(3)
    h = torch.randn(4, 7, 8, dtype=torch.float64)
    matrix = torch.as_tensor(lorentz_matrix(9, 1.2, parity=True))
    with torch.no_grad():
        h1, x1 = block(h, x, pairs)
        h2, x2 = block(h, x @ matrix.T, pairs)
    assert (x1 - x).abs().max() > 1e-4  # the momenta do move
    torch.testing.assert_close(h2, h1, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(x2, x1 @ matrix.T, atol=1e-10, rtol=1e-10)


def test_minkowski_product_of_a_massive_vector() -> None:
    # a top quark at rest and one with |p| = 400 GeV: m^2 = E^2 - p^2 either way
    at_rest = torch.tensor([[[0.0, 0.0, 0.0, 172.5]]])
    moving = torch.tensor([[[240.0, 0.0, 320.0, (172.5**2 + 400.0**2) ** 0.5]]])
    for v in (at_rest, moving):
        torch.testing.assert_close(minkowski(v, v), torch.tensor([[[172.5**2]]]))


def test_published_parameter_count() -> None:
    # the paper's top-tagging LorentzNet has 224k parameters (with its BatchNorms and
    # beam/particle-type embedding, which this one omits): within 2%
    model = build_model("lorentznet", {**VECTOR_DIMS, "pf_features": 2}, 2)
    assert isinstance(model, LorentzNet)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 224_000) / 224_000 < 0.02


def test_learns_from_four_momenta_alone() -> None:
    """256 jets whose classes differ in spread and hardness (so in invariant masses):
    over 95% training accuracy from the four-momenta only, on the jets of two or more
    particles (a massless particle alone has no invariant to tell its class by)."""
    torch.manual_seed(0)
    labels = torch.arange(256) % 2
    batch = make_batch(256, 12, seed=11, labels=labels)
    model = build_model("lorentznet-lite", VECTOR_DIMS, 2, dropout=0.0)
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
