"""Training losses: a typed spec per loss (the ``train.loss`` block of an experiment) and
the ``nn.Module`` it builds.

Every loss is ``loss(output, target, weight) -> scalar``: the event-weighted mean of a
per-entry loss, ``sum(w_i * l_i) / sum(w_i)``, so event weights reach the gradient. A
loss that needs more of the batch (DisCo: the decorrelated observable; adversarial: a
second network) is a :class:`Regulariser` in the ``train.regularisers`` list instead: a
term added to the loss that also sees a per-jet observable (DisCo, a mass adversary).

In an experiment YAML ``loss: ce`` is short for ``loss: {name: ce}``::

    loss: {name: focal, gamma: 2.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from torch import Tensor, nn

from heptagon.models.autoencoder import anomaly_scores

__all__ = [
    "AdversarySpec",
    "CrossEntropy",
    "CrossEntropySpec",
    "DisCo",
    "DiscoSpec",
    "FocalLoss",
    "FocalSpec",
    "LabelProportions",
    "LabelProportionsSpec",
    "LossSpec",
    "MSESpec",
    "MassAdversary",
    "MeanSquaredError",
    "ReconstructionLoss",
    "ReconstructionSpec",
    "Regulariser",
    "RegulariserSpec",
    "WeightedLoss",
    "distance_correlation",
    "gradient_reversal",
    "weighted_mean",
]


def weighted_mean(per_entry: Tensor, weight: Tensor) -> Tensor:
    """``sum(w * l) / sum(w)``; zero (with a gradient) when every weight is zero."""
    total = weight.sum()
    return (per_entry * weight).sum() / torch.where(total > 0, total, torch.ones_like(total))


class WeightedLoss(nn.Module):
    """Base of the losses: ``forward`` is the weighted mean of :meth:`per_entry`."""

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """The loss of each entry, shape ``(batch,)``."""
        raise NotImplementedError

    def forward(self, output: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        """Event-weighted mean loss of the batch (computed in float32)."""
        return weighted_mean(self.per_entry(output.float(), target), weight.float())


class CrossEntropy(WeightedLoss):
    """Softmax cross entropy on ``(batch, n_classes)`` logits and int64 class indices."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """Cross entropy of each entry."""
        return F.cross_entropy(
            output, target, reduction="none", label_smoothing=self.label_smoothing
        )


class FocalLoss(WeightedLoss):
    """Focal loss ``-(1 - p_t)^gamma log p_t`` (Lin et al. 2017) on softmax logits."""

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """Focal loss of each entry."""
        log_p = F.log_softmax(output, dim=1).gather(1, target[:, None]).squeeze(1)
        return -((1.0 - log_p.exp()) ** self.gamma) * log_p


class MeanSquaredError(WeightedLoss):
    """Squared error summed over the targets of each entry (regression)."""

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """Squared error of each entry."""
        return (output - target.to(output.dtype)).square().sum(dim=1)


class ReconstructionLoss(WeightedLoss):
    """An autoencoder's loss (``train.task: anomaly``): per entry the mean squared error of
    the reconstruction over the inputs plus, for a VAE, ``beta`` times the KL divergence of
    its posterior to the prior. ``output`` is the model's packed output
    (:func:`heptagon.models.autoencoder.split_output`), ``target`` the input features."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def per_entry(self, output: Tensor, target: Tensor) -> Tensor:
        """``mse + beta * kl`` of each entry."""
        scores = anomaly_scores(output, target.to(output.dtype))
        kl = scores.get("kl")
        return scores["mse"] if kl is None else scores["mse"] + self.beta * kl


class LabelProportions(WeightedLoss):
    """Learning from label proportions (Dery, Nachman, Rubbo & Schwartzman,
    arXiv:1702.00414): the entries' labels say which mixed sample they come from, and
    ``fractions[m]`` is the known signal fraction of sample ``m``. The loss is the binary
    cross entropy between each sample's known fraction and its entries' weighted mean
    signal probability (softmax column 1), averaged over the samples in the batch; no
    entry's own class is used."""

    def __init__(self, fractions: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("fractions", torch.tensor(list(fractions), dtype=torch.float32))

    fractions: Tensor

    def forward(self, output: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        """Mean over the batch's mixed samples of ``BCE(fraction, mean p)``."""
        p = torch.softmax(output.float(), dim=1)[:, 1]
        groups = F.one_hot(target, len(self.fractions)).float() * weight.float()[:, None]
        total = groups.sum(dim=0)
        present = total > 0
        mean_p = (groups * p[:, None]).sum(dim=0) / torch.where(present, total, 1.0)
        mean_p = mean_p.clamp(1e-6, 1 - 1e-6)
        bce = F.binary_cross_entropy(mean_p, self.fractions, reduction="none")
        return (bce * present).sum() / present.sum().clamp(min=1)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the tasks the loss applies to
    tasks: ClassVar[frozenset[str]] = frozenset({"classification"})

    def build(self) -> WeightedLoss:
        """The loss module."""
        raise NotImplementedError


class CrossEntropySpec(_Spec):
    """``ce``: cross entropy, with optional label smoothing."""

    name: Literal["ce"] = "ce"
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)

    def build(self) -> WeightedLoss:
        """A :class:`CrossEntropy`."""
        return CrossEntropy(self.label_smoothing)


class FocalSpec(_Spec):
    """``focal``: focal loss with focusing parameter ``gamma``."""

    name: Literal["focal"]
    gamma: float = Field(default=2.0, ge=0.0)

    def build(self) -> WeightedLoss:
        """A :class:`FocalLoss`."""
        return FocalLoss(self.gamma)


class MSESpec(_Spec):
    """``mse``: mean squared error (regression)."""

    name: Literal["mse"]
    tasks: ClassVar[frozenset[str]] = frozenset({"regression"})

    def build(self) -> WeightedLoss:
        """A :class:`MeanSquaredError`."""
        return MeanSquaredError()


class LabelProportionsSpec(_Spec):
    """``llp``: learning from label proportions; ``data.labels`` name the two mixed
    samples, ``fractions`` their known signal fractions (in that order)."""

    name: Literal["llp"]
    fractions: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=2, max_length=2)

    @model_validator(mode="after")
    def _different(self) -> LabelProportionsSpec:
        if self.fractions[0] == self.fractions[1]:
            raise ValueError("the two samples' fractions must differ")
        return self

    def build(self) -> WeightedLoss:
        """A :class:`LabelProportions`."""
        return LabelProportions(self.fractions)


class ReconstructionSpec(_Spec):
    """``reconstruction``: an autoencoder's reconstruction MSE, plus ``beta`` times the KL
    term for a VAE (``train.task: anomaly``)."""

    name: Literal["reconstruction"]
    beta: float = Field(default=1.0, ge=0.0, description="weight of a VAE's KL term")
    tasks: ClassVar[frozenset[str]] = frozenset({"anomaly"})

    def build(self) -> WeightedLoss:
        """A :class:`ReconstructionLoss`."""
        return ReconstructionLoss(self.beta)


def _short_form(value: Any) -> Any:
    """``"focal"`` -> ``{"name": "focal"}``; a mapping without ``name`` is the default ``ce``."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" not in value:
        return {"name": "ce", **value}
    return value


#: The ``train.loss`` block: one of the specs, chosen by ``name``.
LossSpec = Annotated[
    CrossEntropySpec | FocalSpec | MSESpec | LabelProportionsSpec | ReconstructionSpec,
    Field(discriminator="name"),
    BeforeValidator(_short_form),
]


# ---------------------------------------------------------------- regularisers


def distance_correlation(x: Tensor, y: Tensor, weight: Tensor) -> Tensor:
    """Weighted squared distance correlation ``dCorr^2(x, y)`` of two ``(n,)`` samples
    (Szekely et al. 2007; the DisCo term of Kasieczka & Shih, arXiv:2001.05310).

    With ``w`` the weights normalised to sum to 1, ``a_ij = |x_i - x_j|`` is double-centred
    with the weighted row means, ``A = a - a.w[:, None] - a.w[None, :] + w.a.w``, and
    ``dCov^2(x, y) = w.(A * B).w``; the result is ``dCov^2(x, y) / sqrt(dCov^2(x, x)
    dCov^2(y, y))``, in [0, 1] and 0 (for large samples) only for independent ``x``, ``y``.
    Zero when either sample is constant (or every weight is zero). Computed in float64.
    """
    w64 = weight.double()
    total = w64.sum()
    w = w64 / torch.where(total > 0, total, torch.ones_like(total))

    def centred(v: Tensor) -> Tensor:
        a = (v.double()[:, None] - v.double()[None, :]).abs()
        row = a @ w
        return a - row[:, None] - row[None, :] + w @ row

    a, b = centred(x), centred(y)
    xy, xx, yy = (w @ (p * q) @ w for p, q in ((a, b), (a, a), (b, b)))
    # a floor instead of a branch: sqrt's gradient at 0 would make the gradient NaN
    return (xy / (xx * yy).clamp_min(1e-200).sqrt()).to(x.dtype)


class _GradientReversal(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``-scale``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


def gradient_reversal(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged, with its gradient multiplied by ``-scale`` on the way back (Ganin &
    Lempitsky 2015)."""
    out: Tensor = _GradientReversal.apply(x, scale)
    return out


class Regulariser(nn.Module):
    """A term added to the classifier's loss that uses a per-jet observable (an observer of
    the data config, e.g. ``jet_sdmass``): the ``train.regularisers`` list.

    The term looks at the classifier's score, the softmax probability of class ``signal``,
    on the entries of the ``background`` classes (class indices into ``data.labels``). Per
    training step the trainer calls :meth:`update` (before the classifier's forward pass is
    differentiated: a regulariser with its own network trains it there), adds
    :meth:`penalty` to the loss, and calls :meth:`step` after the backward pass.
    """

    background: Tensor

    def __init__(self, observable: str, signal: int, background: Sequence[int]) -> None:
        super().__init__()
        self.observable = observable
        self.signal = signal
        self.register_buffer("background", torch.tensor(list(background), dtype=torch.int64))

    def score(self, output: Tensor) -> Tensor:
        """The signal-class probability, ``(batch,)``, in float32."""
        return torch.softmax(output.float(), dim=1)[:, self.signal]

    def background_weight(self, label: Tensor, weight: Tensor) -> Tensor:
        """The event weights of the background entries, 0 elsewhere."""
        return torch.where(torch.isin(label, self.background), weight.float(), 0.0)

    def update(self, output: Tensor, observable: Tensor, label: Tensor, weight: Tensor) -> None:
        """Train the regulariser's own parameters (if any) on the batch; ``output`` is
        detached."""

    def penalty(self, output: Tensor, observable: Tensor, label: Tensor, weight: Tensor) -> Tensor:
        """The term added to the classifier's loss."""
        raise NotImplementedError

    def step(self, grad_scale: float) -> None:
        """After the classifier's backward pass (gradients scaled by ``grad_scale``)."""


class DisCo(Regulariser):
    """``lam * dCorr^2(score, observable)`` on the background (DisCo, arXiv:2001.05310)."""

    def __init__(self, lam: float, observable: str, signal: int, background: Sequence[int]) -> None:
        super().__init__(observable, signal, background)
        self.lam = lam

    def penalty(self, output: Tensor, observable: Tensor, label: Tensor, weight: Tensor) -> Tensor:
        """``lam`` times the background's squared distance correlation."""
        bkg = self.background_weight(label, weight)
        keep = bkg > 0
        return self.lam * distance_correlation(
            self.score(output)[keep], observable.float()[keep], bkg[keep]
        )


class MassAdversary(Regulariser):
    """An adversary that classifies the background's observable bin from the classifier's
    score (Louppe, Kagan & Cranmer's pivot, arXiv:1611.01046, with a classification
    adversary as DeepAK8-MD / ParticleNet-MD). It reads the score as its logit
    ``ln(p / (1 - p))`` (:meth:`feature`, a monotone map of the score that spreads the
    background's tail towards signal-like values, where the sculpting happens).

    The adversary (a small dense network, its own Adam) minimises its weighted cross
    entropy ``L_adv``; the classifier gets ``-lam * L_adv`` (it is rewarded when the
    adversary fails). Alternating (default): :meth:`update` makes ``steps`` adversary steps
    on the detached score before each classifier step. ``gradient_reversal``: one backward
    pass for both, the score reaching the adversary through a gradient-reversal layer of
    scale ``lam`` (the adversary steps in :meth:`step`). The penalty is off for the first
    ``warmup`` steps (the adversary trains during them). ``weighted=False``: every entry of
    the ``background`` classes counts 1, whatever its event weight: a domain adversary
    (observable: a domain index) then also sees unlabelled target-domain entries that
    carry weight 0 in the classification loss (gradient-reversal domain adaptation, Ganin
    & Lempitsky, arXiv:1409.7495, here on the classifier's output).
    """

    edges: Tensor

    def __init__(
        self,
        lam: float,
        observable: str,
        signal: int,
        background: Sequence[int],
        bins: Sequence[float],
        hidden: Sequence[int] = (64, 64),
        lr: float = 1e-3,
        steps: int = 1,
        warmup: int = 0,
        gradient_reversal: bool = False,
        weighted: bool = True,
    ) -> None:
        super().__init__(observable, signal, background)
        self.lam, self.steps, self.warmup = lam, steps, warmup
        self.reversal, self.weighted = gradient_reversal, weighted
        self.register_buffer("edges", torch.tensor(list(bins), dtype=torch.float32))
        layers: list[nn.Module] = []
        width = 1
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, len(bins) - 1))
        self.net = nn.Sequential(*layers)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.n_updates = 0

    def get_extra_state(self) -> dict[str, Any]:
        """The optimizer and the step counter (saved in checkpoints with the weights)."""
        return {"optimizer": self.optimizer.state_dict(), "n_updates": self.n_updates}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`get_extra_state`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.n_updates = state["n_updates"]

    def bin_of(self, observable: Tensor) -> Tensor:
        """The observable's bin index; values outside the edges go to the edge bins."""
        idx = torch.bucketize(observable.float(), self.edges, right=True) - 1
        return idx.clamp(0, len(self.edges) - 2)

    def feature(self, output: Tensor) -> Tensor:
        """The adversary's input: the logit of the signal probability, ``(batch,)``."""
        log_p = F.log_softmax(output.float(), dim=1)
        others = torch.cat([log_p[:, : self.signal], log_p[:, self.signal + 1 :]], dim=1)
        return log_p[:, self.signal] - others.logsumexp(dim=1)

    def adversary_loss(
        self, feature: Tensor, observable: Tensor, label: Tensor, weight: Tensor
    ) -> Tensor:
        """The adversary's weighted cross entropy on the background entries, from
        :meth:`feature`."""
        logits = self.net(feature[:, None])
        per_entry = F.cross_entropy(logits, self.bin_of(observable), reduction="none")
        weight = weight if self.weighted else torch.ones_like(weight)
        return weighted_mean(per_entry, self.background_weight(label, weight))

    def update(self, output: Tensor, observable: Tensor, label: Tensor, weight: Tensor) -> None:
        """Alternating schedule: ``steps`` adversary steps on the detached score."""
        self.n_updates += 1
        if self.reversal:
            return
        feature = self.feature(output.detach())
        for _ in range(self.steps):
            self.optimizer.zero_grad(set_to_none=True)
            self.adversary_loss(feature, observable, label, weight).backward()
            self.optimizer.step()

    def penalty(self, output: Tensor, observable: Tensor, label: Tensor, weight: Tensor) -> Tensor:
        """``-lam * L_adv`` (alternating) or ``L_adv`` through gradient reversal."""
        on = self.n_updates > self.warmup
        feature = self.feature(output)
        if self.reversal:
            self.optimizer.zero_grad(set_to_none=True)
            scale = self.lam if on else 0.0
            return self.adversary_loss(gradient_reversal(feature, scale), observable, label, weight)
        for p in self.net.parameters():
            p.requires_grad_(False)
        try:
            loss = self.adversary_loss(feature, observable, label, weight)
        finally:
            for p in self.net.parameters():
                p.requires_grad_(True)
        return -self.lam * loss if on else loss * 0.0

    def step(self, grad_scale: float) -> None:
        """Gradient reversal: the adversary's step on the gradients of the shared backward."""
        if not self.reversal:
            return
        if grad_scale != 1.0:
            for p in self.net.parameters():
                if p.grad is not None:
                    p.grad.div_(grad_scale)
        self.optimizer.step()


class _RegulariserSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lam: float = Field(ge=0, description="the strength lambda of the term")
    observable: str = Field(
        default="jet_sdmass", description="the decorrelated variable: an observer of the data"
    )
    signal: int = Field(default=1, ge=0, description="class index of the score")
    background: list[int] = Field(
        default=[0], min_length=1, description="class indices the term looks at"
    )

    def build(self) -> Regulariser:
        """The regulariser module."""
        raise NotImplementedError


class DiscoSpec(_RegulariserSpec):
    """``disco``: ``lam * dCorr^2(score, observable)`` on the background."""

    name: Literal["disco"]

    def build(self) -> Regulariser:
        """A :class:`DisCo`."""
        return DisCo(self.lam, self.observable, self.signal, self.background)


class AdversarySpec(_RegulariserSpec):
    """``adversary``: a classifier of the observable's bin from the score (the pivot)."""

    name: Literal["adversary"]
    bins: list[float] = Field(
        default=[float(m) for m in range(0, 301, 30)],
        min_length=3,
        description="bin edges of the observable the adversary classifies",
    )
    hidden: list[int] = Field(default=[64, 64], description="the adversary's hidden widths")
    lr: float = Field(default=1e-3, gt=0)
    steps: int = Field(default=1, ge=1, description="adversary steps per classifier step")
    warmup: int = Field(default=0, ge=0, description="steps before the penalty applies")
    gradient_reversal: bool = False
    weighted: bool = Field(
        default=True, description="false: entries count 1 whatever their event weight"
    )

    @model_validator(mode="after")
    def _increasing(self) -> AdversarySpec:
        if any(b <= a for a, b in zip(self.bins, self.bins[1:], strict=False)):
            raise ValueError("bins must increase")
        return self

    def build(self) -> Regulariser:
        """A :class:`MassAdversary`."""
        return MassAdversary(
            self.lam,
            self.observable,
            self.signal,
            self.background,
            self.bins,
            self.hidden,
            self.lr,
            self.steps,
            self.warmup,
            self.gradient_reversal,
            self.weighted,
        )


#: One entry of ``train.regularisers``, chosen by ``name``::
#:
#:     regularisers:
#:       - {name: disco, lam: 10.0, observable: jet_sdmass}
#:       - {name: adversary, lam: 1.0, bins: [0, 50, 100, 150, 200, 300]}
RegulariserSpec = Annotated[DiscoSpec | AdversarySpec, Field(discriminator="name")]
