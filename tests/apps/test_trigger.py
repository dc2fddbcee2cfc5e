"""Trigger compression, latency, features and continual learning (fast, no compiler)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from heptagon.apps.trigger.compression import (
    FixedPoint,
    FixedPointConv1d,
    FixedPointLinear,
    LayerPrecision,
    dequantize,
    finalize_pruning,
    prune_magnitude,
    quantize_int8,
    quantize_model,
    sparsity,
)
from heptagon.apps.trigger.features import HLF_NAMES, high_level_features
from heptagon.apps.trigger.latency import measure_speed, onnx_bytes
from heptagon.apps.trigger.loop import fit, predict_proba, score
from heptagon.errors import ConfigError
from heptagon.models import build_model
from heptagon.publish.onnx import OUTPUT_NAME, make_session
from heptagon.train.continual import EWC, ReplayMemory


def _toy(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=gen)
    return x, x[:, :5].argmax(1)


def test_fixed_point_rounds_half_up_and_saturates() -> None:
    t = FixedPoint(6, 3)  # steps of 1/8 in [-4, 4 - 1/8]
    assert (t.step, t.low, t.high) == (0.125, -4.0, 3.875)
    x = torch.tensor([0.0625, -0.0625, 0.1, 3.95, 100.0, -4.01, -100.0])
    expected = [0.125, 0.0, 0.125, 3.875, 3.875, -4.0, -4.0]
    assert t.quantize(x).tolist() == expected
    assert t.hls() == "ap_fixed<6,3,AP_RND,AP_SAT>"
    with pytest.raises(ConfigError, match="precision"):
        FixedPoint(8, 9)


def test_quantised_linear_matches_hand_fixed_point() -> None:
    """Integer arithmetic: x and w as integer multiples of their steps, exact products and
    sums, then the result rounded (half up) and saturated to its own type."""
    rng = np.random.default_rng(3)
    w_t, b_t, r_t, in_t = FixedPoint(6, 1), FixedPoint(8, 3), FixedPoint(9, 4), FixedPoint(8, 3)
    layer = nn.Linear(7, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(rng.normal(0, 0.6, (4, 7))))
        layer.bias.copy_(torch.from_numpy(rng.normal(0, 1.0, 4)))
    x = rng.normal(0, 2.0, (50, 7)).astype(np.float32)
    model = quantize_model(nn.Sequential(layer), LayerPrecision(w_t, b_t, r_t), input_type=in_t)
    assert isinstance(model[0], FixedPointLinear)
    got = model(torch.from_numpy(x)).detach().numpy().astype(np.float64)

    def to_int(v: np.ndarray, t: FixedPoint) -> np.ndarray:
        frac = t.total_bits - t.integer_bits
        lo, hi = -(2 ** (t.total_bits - 1)), 2 ** (t.total_bits - 1) - 1
        return np.clip(np.floor(v.astype(np.float64) * 2**frac + 0.5), lo, hi).astype(np.int64)

    xi = to_int(x, in_t)  # units of 2^-5
    wi = to_int(layer.weight.detach().numpy(), w_t)  # units of 2^-5
    bi = to_int(layer.bias.detach().numpy(), b_t)  # units of 2^-5
    acc = xi @ wi.T + bi * 2**5  # units of 2^-10, exact
    ri = np.clip((acc + 2**4) >> 5, -(2**8), 2**8 - 1)  # round to 2^-5 (half up), saturate
    np.testing.assert_array_equal(got, ri * 2.0**-5)


def test_quantised_conv_and_dequantize_round_weights() -> None:
    torch.manual_seed(0)
    model = build_model("cnn1d", {"pf_features": 3, "pf_mask": 1}, 2, n_constituents=4)
    q = quantize_model(model, LayerPrecision.uniform(8, 2))
    assert isinstance(q.net[0], FixedPointConv1d)
    plain = dequantize(q)
    step = FixedPoint(8, 2).step
    for module in plain.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            assert type(module) in (nn.Linear, nn.Conv1d)
            w = module.weight.detach().numpy() / step
            np.testing.assert_array_equal(w, np.round(w))
    with pytest.raises(ConfigError, match="per_layer"):
        quantize_model(model, LayerPrecision.uniform(8, 2), per_layer={"nope": q.net[0].precision})


def test_pruning_reaches_sparsity_and_masks_survive_fine_tuning() -> None:
    torch.manual_seed(0)
    x, y = _toy()
    model = build_model("mlp", {"jet_features": 16}, 5)
    fit(model, [x], y, epochs=3)
    prune_magnitude(model, 0.8, lambda m: fit(m, [x], y, epochs=1, lr=1e-3), steps=3)
    assert sparsity(model) == pytest.approx(0.8, abs=0.01)
    masks = {
        n: m.weight_mask.clone() for n, m in model.named_modules() if hasattr(m, "weight_mask")
    }
    assert len(masks) == 4
    fit(model, [x], y, epochs=3, lr=1e-2)  # a large step would revive unmasked weights
    for name, module in model.named_modules():
        if name in masks:
            assert (module.weight[masks[name] == 0] == 0).all()
    finalize_pruning(model)
    assert sparsity(model) == pytest.approx(0.8, abs=0.01)
    assert not any(hasattr(m, "weight_mask") for m in model.modules())
    assert score(predict_proba(model, [x]), y.numpy()).accuracy > 0.3  # chance: 0.2
    with pytest.raises(ConfigError, match="sparsity"):
        prune_magnitude(model, 1.0, lambda m: None)


def test_qat_model_trains_and_int8_export_agrees() -> None:
    torch.manual_seed(1)
    x, y = _toy()
    model = build_model("mlp", {"jet_features": 16}, 5, hidden=(32,))
    q = quantize_model(model, LayerPrecision.uniform(10, 4), input_type=FixedPoint(10, 4))
    losses = fit(q, [x], y, epochs=6)
    assert losses[-1] < losses[0]
    inputs = {"jet_features": x.numpy()}
    fp32 = onnx_bytes(model, {"jet_features": x.numpy()[:1]})
    int8 = quantize_int8(fp32)
    ops = {node.op_type for node in onnx.load_from_string(int8).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    p32 = make_session(fp32, 1).run([OUTPUT_NAME], inputs)[0]
    p8 = make_session(int8, 1).run([OUTPUT_NAME], inputs)[0]
    np.testing.assert_allclose(p32, predict_proba(model, [x]), atol=1e-5)
    assert (p8.argmax(1) == p32.argmax(1)).mean() > 0.9
    speed = measure_speed(int8, {"jet_features": x.numpy()[:64]}, repeats=100, min_seconds=0.05)
    assert speed.latency_us > 0
    assert speed.throughput > 0
    assert speed.batch == 64


def test_ewc_penalty_zero_at_anchor_and_pulls_back() -> None:
    torch.manual_seed(2)
    x, y = _toy(200)
    model = build_model("mlp", {"jet_features": 16}, 5, hidden=(8,))
    ewc = EWC(strength=10.0)
    assert float(ewc.penalty(model).detach()) == 0.0
    ewc.consolidate(model, [x], y)
    assert float(ewc.penalty(model).detach()) == 0.0
    assert all((f >= 0).all() for f in ewc.fisher.values())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    penalty = ewc.penalty(model)
    assert float(penalty.detach()) > 0
    penalty.backward()
    first = next(model.parameters())
    assert first.grad is not None
    assert (first.grad >= 0).all()  # pushes back towards the anchor


def test_replay_memory_keeps_equal_shares() -> None:
    memory = ReplayMemory(size=60)
    for k in range(3):
        memory.add([torch.full((100, 2), float(k))], torch.full((100,), k))
    xs, y = memory.mix([torch.zeros(5, 2)], torch.full((5,), 9))
    assert len(y) == 5 + 60
    assert [int((y == k).sum()) for k in range(3)] == [20, 20, 20]
    assert torch.equal(xs[0][5:, 0], y[5:].float())


def test_replay_memory_state_round_trip_rethins() -> None:
    memory = ReplayMemory(size=60, seed=1)
    for k in range(3):
        inputs = [torch.full((100, 2), float(k)), torch.full((100, 1), -k)]
        memory.add(inputs, torch.full((100,), k))
    assert memory.shares == [20, 20, 20]
    smaller = ReplayMemory(size=30)
    smaller.load_state(memory.state())
    assert smaller.shares == [10, 10, 10]
    xs, y = smaller.mix([torch.zeros(0, 2), torch.zeros(0, 1)], torch.zeros(0, dtype=torch.long))
    assert torch.equal(xs[0][:, 0], y.float())  # rows kept whole: inputs stay with labels
    assert torch.equal(xs[1][:, 0], -y)
    smaller.add([torch.full((50, 2), 3.0), torch.full((50, 1), -3)], torch.full((50,), 3))
    assert smaller.shares == [7, 7, 7, 7]
    # restored at the same size, a memory draws on as the original does
    restored = ReplayMemory(size=60)
    restored.load_state(memory.state())
    new = [torch.arange(40.0).reshape(20, 2), torch.zeros(20, 1)], torch.arange(20)
    memory.add(*new)
    restored.add(*new)
    assert restored.shares == memory.shares == [15, 15, 15, 15]
    empty = [torch.zeros(0, 2), torch.zeros(0, 1)], torch.zeros(0, dtype=torch.long)
    pairs = zip(memory.mix(*empty)[0], restored.mix(*empty)[0], strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_ewc_state_round_trip_and_pruned_layers() -> None:
    torch.manual_seed(3)
    x, y = _toy(200)
    model = build_model("mlp", {"jet_features": 16}, 5, hidden=(8,))
    ewc = EWC(strength=10.0)
    ewc.consolidate(model, [x], y)
    again = EWC(strength=10.0)
    again.load_state(ewc.state())
    assert float(again.penalty(model).detach()) == 0.0
    pruned = build_model("mlp", {"jet_features": 16}, 5, hidden=(8,))
    pruned.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in (*model.parameters(), *pruned.parameters()):
            p.add_(0.05)
    for module in pruned.modules():
        if isinstance(module, nn.Linear):  # all kept: the same weights, named weight_orig
            torch.nn.utils.prune.custom_from_mask(module, "weight", torch.ones_like(module.weight))
    expected = float(ewc.penalty(model).detach())
    assert expected > 0
    assert float(again.penalty(pruned).detach()) == pytest.approx(expected, rel=1e-6)


def _jet(pt: list[float], eta: list[float], phi: list[float]) -> dict[str, list[float]]:
    p, e, f = np.array(pt), np.array(eta), np.array(phi)
    return {
        "px": list(p * np.cos(f)),
        "py": list(p * np.sin(f)),
        "pz": list(p * np.sinh(e)),
        "energy": list(p * np.cosh(e)),
    }


def test_high_level_features_match_hand_computation() -> None:
    # two massless particles with z > z_cut: mMDT keeps both
    two = _jet([300.0, 200.0], [0.0, 0.1], [0.0, 0.2])
    three = _jet([250.0, 150.0, 100.0], [0.0, 0.15, -0.1], [0.0, 0.05, 0.12])
    jets = ak.Array([two, three])
    x = high_level_features(jets.px, jets.py, jets.pz, jets.energy, radius=0.8)
    assert x.shape == (2, len(HLF_NAMES))
    f = dict(zip(HLF_NAMES, x[0], strict=True))
    z = np.array([0.6, 0.4])
    dr = np.hypot(0.1, 0.2)  # massless: rapidity = pseudorapidity
    assert f["multiplicity"] == 2
    assert f["zlogz"] == pytest.approx(np.sum(z * np.log(z)), rel=1e-5)
    assert f["c1_b0_mmdt"] == pytest.approx(0.24, rel=1e-5)
    assert f["c1_b1_mmdt"] == pytest.approx(0.24 * dr, rel=1e-5)
    assert f["c1_b2_mmdt"] == pytest.approx(0.24 * dr**2, rel=1e-5)
    mass2 = 2 * 300.0 * 200.0 * (np.cosh(0.1) - np.cos(0.2))
    assert f["mass_mmdt"] == pytest.approx(np.sqrt(mass2), rel=1e-5)
    assert f["c2_b1_mmdt"] == 0.0  # no three-particle term
    assert f["d2_b1_mmdt"] == 0.0
    # three particles: brute-force generalised ECFs
    g = dict(zip(HLF_NAMES, x[1], strict=True))
    zs = np.array([0.5, 0.3, 0.2])
    eta, phi = np.array([0.0, 0.15, -0.1]), np.array([0.0, 0.05, 0.12])
    d = {(i, j): np.hypot(eta[i] - eta[j], phi[i] - phi[j]) for i in range(3) for j in range(3)}
    angles = sorted([d[0, 1], d[0, 2], d[1, 2]])
    for beta in (1.0, 2.0):
        b = int(beta)
        e2b = sum(zs[i] * zs[j] * d[i, j] ** beta for i, j in ((0, 1), (0, 2), (1, 2)))
        e3 = zs.prod() * np.prod(angles) ** beta
        assert g[f"c2_b{b}_mmdt"] == pytest.approx(e3 / e2b**2, rel=1e-4)
        assert g[f"d2_b{b}_mmdt"] == pytest.approx(e3 / e2b**3, rel=1e-4)
        assert g[f"m2_b{b}_mmdt"] == pytest.approx(zs.prod() * angles[0] ** beta / e2b, rel=1e-4)
        n2 = zs.prod() * (angles[0] * angles[1]) ** beta / e2b**2
        assert g[f"n2_b{b}_mmdt"] == pytest.approx(n2, rel=1e-4)
    assert g["d2_a1_b1_mmdt"] == g["d2_b1_mmdt"]
