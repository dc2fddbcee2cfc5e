"""Tiny synthetic inputs in the models' group convention, and padding/permutation helpers."""

from __future__ import annotations

import io
import math

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

from heptagon.models import available_models, build_model

#: variables per group for the tests (pf_features: the top-tagging 7)
DIMS = {
    "pf_points": 2,
    "pf_features": 7,
    "pf_vectors": 4,
    "pf_mask": 1,
    "sv_features": 5,
    "sv_mask": 1,
    "jet_features": 6,
}
#: jagged groups and the mask that goes with each
MASK_OF = {
    "pf_points": "pf_mask",
    "pf_features": "pf_mask",
    "pf_vectors": "pf_mask",
    "pf_mask": "pf_mask",
    "sv_features": "sv_mask",
    "sv_mask": "sv_mask",
}
#: the jet-level torch models (MLPF maps event elements to particles: tests/apps/test_mlpf*)
TORCH_MODELS = tuple(m for m in available_models() if m not in ("bdt", "mlpf"))
#: small options so that the full-size architectures stay fast in tests where size is moot
SMALL = {
    "particlenet": {"conv_params": ((4, (16, 16)), (4, (16, 16)))},
    "part": {"embed_dims": (16, 16), "pair_embed_dims": (8,), "num_heads": 2, "num_layers": 1},
}


def make_batch(
    n_jets: int, n_slots: int, seed: int, labels: Tensor | None = None, empty_jet: bool = False
) -> dict[str, Tensor]:
    """Random jets with 1..n_slots real particles (0 for the first jet if ``empty_jet``),
    0..3 secondary vertices and flat features; with ``labels``, class 1 jets have shifted
    features, more spread points and harder particles (learnable)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.zeros(n_jets) if labels is None else labels.float()
    shift = y.view(-1, 1, 1)
    counts = torch.randint(1, n_slots + 1, (n_jets,), generator=g)
    if empty_jet:
        counts[0] = 0
    mask = (torch.arange(n_slots) < counts.unsqueeze(1)).float().unsqueeze(1)
    points = torch.randn(n_jets, 2, n_slots, generator=g) * (0.2 + 0.3 * shift)
    # a pattern across features, so that per-particle normalisation (ParT's LayerNorm)
    # cannot remove it
    pattern = torch.tensor([1.0, -1.0] * 4)[: DIMS["pf_features"]].view(1, -1, 1)
    features = torch.randn(n_jets, DIMS["pf_features"], n_slots, generator=g) + shift * pattern
    pt = torch.rand(n_jets, 1, n_slots, generator=g) * (10 + 20 * shift) + 1
    eta, phi = points[:, :1] + 0.5, points[:, 1:]
    vectors = torch.cat(
        [pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)],
        dim=1,
    )
    n_sv = 3
    sv_counts = torch.randint(0, n_sv + 1, (n_jets,), generator=g)
    sv_mask = (torch.arange(n_sv) < sv_counts.unsqueeze(1)).float().unsqueeze(1)
    sv = torch.randn(n_jets, DIMS["sv_features"], n_sv, generator=g) + shift
    jet = torch.randn(n_jets, DIMS["jet_features"], generator=g) + 1.5 * y.view(-1, 1)
    return {
        "pf_points": points * mask,
        "pf_features": features * mask,
        "pf_vectors": vectors * mask,
        "pf_mask": mask,
        "sv_features": sv * sv_mask,
        "sv_mask": sv_mask,
        "jet_features": jet,
    }


def pad(batch: dict[str, Tensor], extra: int) -> dict[str, Tensor]:
    """Append ``extra`` zero-padded slots to every jagged group."""
    return {
        k: torch.nn.functional.pad(v, (0, extra)) if k in MASK_OF else v for k, v in batch.items()
    }


def permute(batch: dict[str, Tensor], seed: int) -> dict[str, Tensor]:
    """Shuffle the particle slots (one permutation for all pf groups; padding interleaves)."""
    n = batch["pf_mask"].shape[2]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return {k: v[:, :, order] if MASK_OF.get(k) == "pf_mask" else v for k, v in batch.items()}


def inputs_for(model: torch.nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
    return tuple(batch[name] for name in model.input_names)


def small_model(name: str, num_classes: int = 2, **options: object) -> torch.nn.Module:
    """``name`` built for :data:`DIMS`, shrunk when the full size does not matter."""
    family = name.split("-")[0]
    opts = {**SMALL.get(name, {}), **options} if family == name else dict(options)
    model = build_model(name, DIMS, num_classes, **opts)
    assert isinstance(model, torch.nn.Module)
    return model


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def close_to(value: int, target: float, rel: float = 0.02) -> bool:
    return math.isclose(value, target, rel_tol=rel)


def onnx_and_torch(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime's and PyTorch's outputs of ``model`` (in eval mode), exported with the
    legacy exporter at opset 17 with dynamic batch and slot axes, on a batch of another
    size and number of slots than at export, with extra padding and an empty jet."""
    names = list(model.input_names)
    axes = {n: {0: "batch", 2: MASK_OF[n]} if n in MASK_OF else {0: "batch"} for n in names}
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        inputs_for(model, make_batch(3, 6, seed=1)),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=names,
        output_names=["output"],
        dynamic_axes={**axes, "output": {0: "batch"}},
    )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    batch = pad(make_batch(5, 11, seed=2, empty_jet=True), 3)
    with torch.no_grad():
        expected = model(*inputs_for(model, batch)).numpy()
    (got,) = session.run(None, {n: batch[n].numpy() for n in names})
    return got, expected
