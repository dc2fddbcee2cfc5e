"""The AK4 flavour taggers' secondary-vertex inputs: ParticleNet with the SV point cloud,
ParT-AK4 with SV tokens, DeepJet with charged / neutral branches and global features,
and the check of hand-declared masks (a ConfigError naming the group)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_helpers import DIMS, make_batch
from torch import Tensor

from heptagon.data import Preprocess
from heptagon.errors import ConfigError
from heptagon.models import build_model
from heptagon.publish.onnx import _parity_cases

SV_DIMS = {**DIMS, "sv_points": 2, "sv_vectors": 4}


def with_sv(n_jets: int, seed: int) -> dict[str, Tensor]:
    """make_batch's jets plus SV points and four-vectors (zero in padded SV slots)."""
    batch = make_batch(n_jets, 8, seed)
    g = torch.Generator().manual_seed(seed + 100)
    batch["sv_mask"][0] = 0.0  # the first jet without SVs, the second with all three
    batch["sv_mask"][1] = 1.0
    batch["sv_features"] = batch["sv_features"] * batch["sv_mask"]
    mask = batch["sv_mask"]
    n_sv = mask.shape[2]
    points = torch.randn(n_jets, 2, n_sv, generator=g) * 0.1
    pt = torch.rand(n_jets, 1, n_sv, generator=g) * 20 + 5
    eta, phi = points[:, :1] + 0.5, points[:, 1:]
    vectors = torch.cat(
        [pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta) + 1],
        dim=1,
    )
    return {**batch, "sv_points": points * mask, "sv_vectors": vectors * mask}


def sv_permuted_and_padded(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The SV slots reversed (padding first) and two more padded slots."""
    out = dict(batch)
    for k in ("sv_points", "sv_features", "sv_vectors", "sv_mask"):
        out[k] = torch.nn.functional.pad(batch[k].flip(2), (0, 2))
    return out


def call(model: torch.nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return model(*(batch[n] for n in model.input_names))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "options", "groups"),
    [
        ("particlenet", {"conv_params": ((4, (16, 16)),)}, ("sv_points", "sv_features")),
        ("part-ak4-lite", {}, ("sv_features", "sv_vectors")),
        ("deepjet", {"sv_sort_by": 0}, ("sv_features",)),  # sorted: order-free
    ],
)
def test_svs_are_used_and_their_order_and_padding_do_not_matter(
    name: str, options: dict[str, object], groups: tuple[str, ...]
) -> None:
    torch.manual_seed(0)
    model = build_model(name, SV_DIMS, 4, **options)
    assert isinstance(model, torch.nn.Module)
    model.eval()
    assert all(g in model.input_names for g in (*groups, "sv_mask"))
    batch = with_sv(6, seed=3)
    with torch.no_grad():
        ref = call(model, batch)
        torch.testing.assert_close(call(model, sv_permuted_and_padded(batch)), ref)
        # other SV features change the output of a jet with SVs, not of one without
        changed = {**batch, "sv_features": batch["sv_features"] + 1.0 * batch["sv_mask"]}
        out = call(model, changed)
    has_sv = batch["sv_mask"].sum(dim=(1, 2)) > 0
    assert has_sv.any()
    assert (~has_sv).any()
    assert not torch.allclose(out[has_sv], ref[has_sv])
    torch.testing.assert_close(out[~has_sv], ref[~has_sv])


def test_particlenet_without_all_sv_groups_is_the_plain_model() -> None:
    plain = build_model(
        "particlenet", {k: DIMS[k] for k in ("pf_points", "pf_features", "pf_mask")}, 2
    )
    torch.manual_seed(0)
    a = build_model("particlenet", DIMS, 2)  # sv_features and sv_mask, no sv_points
    torch.manual_seed(0)
    b = build_model("particlenet", {k: DIMS[k] for k in ("pf_points", "pf_features", "pf_mask")}, 2)
    assert a.input_names == b.input_names == plain.input_names
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_export_parity_cases_keep_each_mask_group() -> None:
    """The single-particle parity case cuts each group to its first slot with that slot's
    own mask: a jet without SVs keeps an empty SV group (no ghost vertex made real)."""
    batch = with_sv(6, seed=4)  # jet 0 without SVs, jet 1 with all three
    names = ("pf_features", "pf_vectors", "pf_mask", "sv_features", "sv_vectors", "sv_mask")
    cases = _parity_cases([{n: batch[n] for n in names}], names, Preprocess(inputs={}))
    single = next(v for k, v in cases.items() if k.endswith("_single_particle"))
    n = batch["sv_mask"].shape[0]
    assert (single["pf_mask"][:, 0, 0] == 1).all()
    assert single["pf_mask"][:, 0, 1:].sum() == 0
    np.testing.assert_array_equal(single["sv_mask"][:n, 0, 0], batch["sv_mask"][:, 0, 0])
    assert single["sv_mask"][0].sum() == 0
    assert single["sv_mask"][1, 0, 0] == 1
    assert single["sv_mask"][:, 0, 1:].sum() == 0
    # ParT-AK4 takes such a case as it is (no energy check of its own on SV slots)
    model = build_model("part-ak4-lite", SV_DIMS, 4).eval()
    with torch.no_grad():
        out = model(*(torch.from_numpy(single[k][:n]) for k in model.input_names))
    assert torch.isfinite(out).all()


def test_deepjet_charged_and_neutral_branches_and_global_features() -> None:
    torch.manual_seed(0)
    model = build_model("deepjet", DIMS, 4, charge_index=0, use_jet_features=True).eval()
    assert model.input_names == ("pf_features", "pf_mask", "sv_features", "sv_mask", "jet_features")
    batch = make_batch(6, 8, seed=5)
    # variable 0 marks charged candidates: make the even slots neutral
    neutral = torch.zeros_like(batch["pf_features"][:, :1])
    neutral[..., ::2] = 1.0
    batch["pf_features"][:, :1] *= 1 - neutral
    with torch.no_grad():
        ref = call(model, batch)
        swapped = dict(batch)
        swapped["jet_features"] = batch["jet_features"] + 1.0
        assert not torch.allclose(call(model, swapped), ref)
    with pytest.raises(ConfigError, match="charge_index"):
        build_model("deepjet", DIMS, 4, charge_index=DIMS["pf_features"])
    with pytest.raises(ConfigError, match="jet_features"):
        build_model("deepjet", {"pf_features": 7, "pf_mask": 1}, 4, use_jet_features=True)


@pytest.mark.parametrize(
    ("name", "mask", "other"),
    [
        ("deepjet", "pf_mask", "pf_features"),
        ("deepjet", "sv_mask", "sv_features"),
        ("particlenet", "pf_mask", "pf_points"),
        ("particlenet", "sv_mask", "sv_points"),
        ("part-ak4-lite", "pf_mask", "pf_vectors"),
        ("part-ak4-lite", "sv_mask", "sv_vectors"),
    ],
)
def test_a_mask_that_does_not_fit_its_group_is_a_config_error(
    name: str, mask: str, other: str
) -> None:
    model = build_model(name, SV_DIMS, 4)
    assert isinstance(model, torch.nn.Module)
    batch = with_sv(3, seed=6)
    short = {**batch, mask: batch[mask][:, :, :-1]}
    with pytest.raises(ConfigError, match=f"'{mask}'.*'{other}'|'{mask}'") as err:
        call(model.eval(), short)
    assert err.value.key == f"inputs.{mask}"


def test_particlenet_trains_on_a_batch_with_one_sv() -> None:
    model = build_model("particlenet-lite", SV_DIMS, 4)
    assert isinstance(model, torch.nn.Module)
    batch = with_sv(4, seed=7)
    batch["sv_mask"] = torch.zeros_like(batch["sv_mask"])
    batch["sv_mask"][1, 0, 0] = 1.0  # one real SV in the batch
    before = [b.clone() for n, b in model.named_buffers() if "sv_embed" in n]
    call(model.train(), batch).sum().backward()
    after = [b for n, b in model.named_buffers() if "sv_embed" in n]
    assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))
