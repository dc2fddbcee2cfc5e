"""Mass-decorrelation terms (distance correlation / DisCo, the mass adversary) and the
label-proportions loss of weak supervision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from train_helpers import write_experiment

from heptagon.errors import ConfigError
from heptagon.train import train
from heptagon.train.losses import (
    DisCo,
    LabelProportions,
    LabelProportionsSpec,
    MassAdversary,
    distance_correlation,
)
from heptagon.train.rundir import load_checkpoint

CONFIGS = Path(__file__).parents[2] / "configs"


def test_distance_correlation_independent_vs_dependent() -> None:
    gen = torch.Generator().manual_seed(1)
    x, noise = torch.randn(800, generator=gen), torch.randn(800, generator=gen)
    w = torch.rand(800, generator=gen) + 0.5
    independent = distance_correlation(x, noise, w)
    dependent = distance_correlation(x, x.square() + 0.3 * noise, w)  # no linear correlation
    assert independent.shape == ()
    assert 0.0 <= float(independent) < 0.01
    assert float(dependent) > 0.2
    torch.testing.assert_close(distance_correlation(x, 3.0 * x + 1.0, w), torch.tensor(1.0))
    assert float(distance_correlation(x, torch.ones(800), w)) == 0.0


def test_distance_correlation_gradient_is_finite_for_a_constant_sample() -> None:
    x = torch.zeros(16, requires_grad=True)  # e.g. saturated scores
    distance_correlation(x, torch.arange(16.0), torch.ones(16)).backward()
    assert x.grad is not None
    assert torch.all(torch.isfinite(x.grad))


def test_distance_correlation_weights_select_entries() -> None:
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    w = torch.rand(50, generator=gen)
    w[::3] = 0.0
    keep = w > 0
    torch.testing.assert_close(
        distance_correlation(x, y, w), distance_correlation(x[keep], y[keep], w[keep])
    )


def test_disco_penalty_looks_at_background_only() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 2, generator=gen, requires_grad=True)
    mass = torch.rand(64, generator=gen) * 300
    label = torch.randint(0, 2, (64,), generator=gen)
    weight = torch.ones(64)
    penalty = DisCo(10.0, "jet_sdmass", 1, [0]).penalty(logits, mass, label, weight)
    assert penalty.shape == ()
    assert penalty.item() > 0
    penalty.backward()
    assert logits.grad is not None
    assert torch.all(logits.grad[label == 1] == 0)
    assert torch.any(logits.grad[label == 0] != 0)


def _adversary_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    mass = torch.rand(256, generator=gen) * 300
    logits = torch.stack([torch.zeros(256), mass / 100 - 1.5], dim=1)  # score follows mass
    return logits, mass, torch.zeros(256, dtype=torch.int64), torch.ones(256)


@pytest.mark.parametrize("reversal", [False, True])
def test_adversary_loss_enters_classifier_gradient_with_opposite_sign(reversal: bool) -> None:
    torch.manual_seed(0)
    logits, mass, label, weight = _adversary_inputs()
    adversary = MassAdversary(
        2.0, "jet_sdmass", 1, [0], [0, 100, 200, 300], [16], 1e-2, gradient_reversal=reversal
    )
    for _ in range(10):  # the adversary learns the mass from the score
        adversary.update(logits, mass, label, weight)
        if reversal:
            adversary.penalty(logits, mass, label, weight).backward()
            adversary.step(1.0)
    out = logits.clone().requires_grad_(True)
    adversary.penalty(out, mass, label, weight).backward()
    assert out.grad is not None

    feature = adversary.feature(logits)
    torch.testing.assert_close(feature, logits[:, 1] - logits[:, 0])  # the score's logit
    leaf = feature.detach().requires_grad_(True)
    (grad_feature,) = torch.autograd.grad(adversary.adversary_loss(leaf, mass, label, weight), leaf)
    # the classifier's gradient is -lam dL_adv/d(logit_1 - logit_0)
    torch.testing.assert_close(out.grad[:, 1], -2.0 * grad_feature, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(out.grad[:, 0], 2.0 * grad_feature, rtol=1e-4, atol=1e-7)

    # a classifier step along the gradient makes the adversary worse
    def adv_loss(out: torch.Tensor) -> float:
        return adversary.adversary_loss(adversary.feature(out), mass, label, weight).item()

    assert adv_loss(logits - 0.5 * out.grad) > adv_loss(logits)


def test_adversary_learns_alternating() -> None:
    torch.manual_seed(0)
    logits, mass, label, weight = _adversary_inputs()
    adversary = MassAdversary(1.0, "jet_sdmass", 1, [0], [0, 100, 200, 300], [16], 3e-2)
    first = adversary.adversary_loss(adversary.feature(logits), mass, label, weight).item()
    for _ in range(40):
        adversary.update(logits, mass, label, weight)
    last = adversary.adversary_loss(adversary.feature(logits), mass, label, weight).item()
    assert last < first - 0.2


def _experiment(tmp_path: Path, regularisers: list[dict[str, object]]) -> Path:
    return write_experiment(
        tmp_path / "md.yaml",
        {
            "data": str(CONFIGS / "data" / "top_jet.yaml"),
            "model": {"name": "mlp", "options": {"hidden": [16]}},
            "train": {
                "epochs": 2,
                "batch_size": 64,
                "progress": False,
                "regularisers": regularisers,
            },
        },
    )


def test_training_with_regularisers(top_qcd_sample: Path, tmp_path: Path) -> None:
    experiment = _experiment(
        tmp_path,
        [
            {"name": "disco", "lam": 5.0},
            {"name": "adversary", "lam": 0.5, "bins": [0, 100, 200, 300]},
        ],
    )
    summary = train(experiment, top_qcd_sample, tmp_path / "run")
    assert summary.steps > 0
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert any(k.startswith("1.net.") for k in last["regularisers"])
    assert last["regularisers"]["1._extra_state"]["n_updates"] == summary.steps


def test_regulariser_observable_must_be_an_observer(top_qcd_sample: Path, tmp_path: Path) -> None:
    experiment = _experiment(tmp_path, [{"name": "disco", "lam": 1.0, "observable": "jet_tau1"}])
    with pytest.raises(ConfigError) as err:
        train(experiment, top_qcd_sample, tmp_path / "run")
    assert err.value.key == "train.regularisers.0.observable"


def test_label_proportions_loss_is_minimal_at_the_true_fractions() -> None:
    loss = LabelProportions([0.2, 0.7])
    target = torch.tensor([0] * 10 + [1] * 10)
    weight = torch.ones(20)

    def logits(p0: float, p1: float) -> torch.Tensor:
        p = torch.tensor([p0] * 10 + [p1] * 10)
        return torch.stack([torch.zeros(20), torch.log(p / (1 - p))], dim=1)

    best = loss(logits(0.2, 0.7), target, weight)
    assert best.item() < loss(logits(0.3, 0.7), target, weight).item()
    assert best.item() < loss(logits(0.2, 0.5), target, weight).item()
    # one sample alone in the batch: only its term
    alone = loss(logits(0.2, 0.7)[:10], target[:10], weight[:10])
    torch.testing.assert_close(alone, F.binary_cross_entropy(torch.tensor(0.2), torch.tensor(0.2)))
    with pytest.raises(ValidationError):
        LabelProportionsSpec(name="llp", fractions=[0.5, 0.5])


def test_unweighted_domain_adversary_sees_zero_weight_entries() -> None:
    logits, _, label, _ = _adversary_inputs()
    domain = (torch.arange(256) % 2).float()
    weight = 1.0 - domain  # the target domain (1) has no weight in the classification
    bins = [-0.5, 0.5, 1.5]
    unweighted = MassAdversary(1.0, "domain", 1, [0, 1], bins, weighted=False)
    weighted = MassAdversary(1.0, "domain", 1, [0, 1], bins)
    weighted.load_state_dict(unweighted.state_dict())
    feature = unweighted.feature(logits)
    both = unweighted.adversary_loss(feature, domain, label, weight)
    source_only = weighted.adversary_loss(feature, domain, label, weight)
    per_entry = F.cross_entropy(
        unweighted.net(feature[:, None]), domain.long(), reduction="none"
    ).detach()
    torch.testing.assert_close(both.detach(), per_entry.mean())
    torch.testing.assert_close(source_only.detach(), per_entry[domain == 0].mean())
