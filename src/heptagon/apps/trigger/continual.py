"""Continual learning for a trigger model topped up on small datasets from a changing
detector: elastic weight consolidation and experience replay.

- EWC (Kirkpatrick et al. 2017, arXiv:1612.00796), online form: after each condition the
  diagonal Fisher information of the parameters on that condition's data is added to a
  running sum and the weights become the new anchor; fine-tuning on the next condition
  adds ``strength / 2 * sum_i F_i (theta_i - anchor_i)**2`` to the loss.
- Replay: a fixed-size memory of earlier examples, an equal share drawn at random from
  every condition seen, is mixed into each top-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heptagon.errors import ConfigError

__all__ = ["EWC", "ReplayMemory"]


class EWC:
    """Online elastic weight consolidation for ``model`` (see the module docstring)."""

    def __init__(self, strength: float) -> None:
        if strength < 0:
            raise ConfigError(f"must be >= 0, got {strength}", key="ewc_strength")
        self.strength = strength
        self.fisher: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    def consolidate(
        self,
        model: nn.Module,
        inputs: Sequence[Tensor],
        labels: Tensor,
        batch_size: int = 64,
    ) -> None:
        """Add the empirical diagonal Fisher of the model on this data (mean over batches
        of the squared gradient of the log-likelihood of the true labels) and set the
        anchor to the current weights."""
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        was_training = model.training
        model.eval()
        n_batches = 0
        for start in range(0, len(labels), batch_size):
            model.zero_grad(set_to_none=True)
            batch = [x[start : start + batch_size] for x in inputs]
            F.cross_entropy(model(*batch), labels[start : start + batch_size]).backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name] += p.grad.detach() ** 2
            n_batches += 1
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        for name, f in fisher.items():
            f /= max(n_batches, 1)
            self.fisher[name] = self.fisher[name] + f if name in self.fisher else f
            self.anchor[name] = params[name].detach().clone()

    def state(self) -> dict[str, Tensor]:
        """The Fisher sums and anchors as flat tensors (``fisher.<param>``, ``anchor.<param>``)."""
        return {
            **{f"fisher.{n}": f for n, f in self.fisher.items()},
            **{f"anchor.{n}": a for n, a in self.anchor.items()},
        }

    def load_state(self, state: Mapping[str, Tensor]) -> None:
        """Take the Fisher sums and anchors of :meth:`state` (other keys are ignored)."""
        for key, value in state.items():
            kind, _, name = key.partition(".")
            if kind == "fisher":
                self.fisher[name] = value
            elif kind == "anchor":
                self.anchor[name] = value

    def penalty(self, model: nn.Module) -> Tensor:
        """``strength / 2 * sum F (theta - anchor)**2`` (zero before any consolidation). A
        pruned layer's ``weight_orig`` (``torch.nn.utils.prune``) counts as its ``weight``."""
        total = torch.zeros(())
        for full_name, p in model.named_parameters():
            name = full_name.removesuffix("_orig")
            if name in self.fisher:
                total = total + (self.fisher[name] * (p - self.anchor[name]) ** 2).sum()
        return 0.5 * self.strength * total


class ReplayMemory:
    """At most ``size`` stored examples with an equal share from every condition added."""

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise ConfigError(f"must be >= 1, got {size}", key="replay_size")
        self.size = size
        self._gen = torch.Generator().manual_seed(seed)
        self._parts: list[tuple[list[Tensor], Tensor]] = []

    def add(self, inputs: Sequence[Tensor], labels: Tensor) -> None:
        """Remember a random subset of this condition's examples; older conditions are
        thinned so that each keeps ``size // conditions`` examples."""
        self._parts.append(([x.clone() for x in inputs], labels.clone()))
        self._thin()

    @property
    def shares(self) -> list[int]:
        """The number of examples kept from each condition, in the order they were added."""
        return [len(y) for _, y in self._parts]

    def state(self) -> dict[str, Tensor]:
        """The memory as flat tensors: ``x<i>.<k>`` (input ``k``) and ``y<i>`` per condition,
        and ``rng``, the state of its random generator (a memory restored from it draws as
        the original would have gone on drawing)."""
        out: dict[str, Tensor] = {"rng": self._gen.get_state()}
        for i, (xs, y) in enumerate(self._parts):
            out |= {f"x{i}.{k}": x for k, x in enumerate(xs)}
            out[f"y{i}"] = y
        return out

    def load_state(self, state: Mapping[str, Tensor]) -> None:
        """Replace the memory (and the generator's state) with that of :meth:`state`; with
        more than ``size // conditions`` examples of a condition, each is thinned to that."""
        if "rng" in state:
            self._gen.set_state(state["rng"])
        n = sum(1 for key in state if key.startswith("y"))
        self._parts = []
        for i in range(n):
            n_inputs = sum(1 for key in state if key.startswith(f"x{i}."))
            xs = [state[f"x{i}.{k}"] for k in range(n_inputs)]
            self._parts.append((xs, state[f"y{i}"]))
        if any(len(y) > self.size // max(n, 1) for _, y in self._parts):
            self._thin()

    def _thin(self) -> None:
        share = self.size // max(len(self._parts), 1)
        thinned = []
        for xs, y in self._parts:
            keep = torch.randperm(len(y), generator=self._gen)[:share]
            thinned.append(([x[keep] for x in xs], y[keep]))
        self._parts = thinned

    def mix(self, inputs: Sequence[Tensor], labels: Tensor) -> tuple[list[Tensor], Tensor]:
        """The new examples followed by every remembered one."""
        xs = [torch.cat([x, *(p[0][i] for p in self._parts)]) for i, x in enumerate(inputs)]
        return xs, torch.cat([labels, *(p[1] for p in self._parts)])
