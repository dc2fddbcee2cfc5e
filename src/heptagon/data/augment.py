"""Physics-respecting augmentation of the training jets (docs/small-data.md).

Opt-in per experiment with ``train.augment`` (:class:`AugmentSpec`)::

    train:
      augment:
        rotate: true            # a rotation about the jet axis, by a uniform angle
        reflect: true           # reflections in rapidity and in phi about the jet axis
        boost: 0.1              # a boost along the jet axis, rapidity uniform in [-0.1, 0.1]
        collinear_split: 0.1    # each particle split in two collinear ones, probability 0.1
        soft: {probability: 0.1, fraction: 0.01, radius: 0.1}   # soft emissions

Only the training split is augmented, a new draw every epoch: each chunk of entries gets
its own random generator from ``(seed, epoch, file name, first entry)``, so the same seed
gives the same augmented jets whatever the order in which chunks are read.

What each operation keeps, on the constituents' four-momenta ``part_px, part_py, part_pz,
part_energy`` (GeV):

- rotation about the jet's three-momentum axis, reflection in phi (``phi -> 2 phi_J - phi``)
  and in rapidity (``y -> 2 y_J - y``, a longitudinal boost to the jet's rest rapidity,
  ``pz -> -pz``, and back) and a boost along the jet axis are Lorentz transformations of
  all constituents: every Minkowski product is kept, so is the jet mass; the rotation and
  the reflections keep the jet four-momentum itself (the reflections in rapidity and phi
  also keep every pT and every pairwise distance in (y, phi), so soft-drop mass and
  N-subjettiness too); the boost changes the jet energy and pT, not its direction. Each
  reflection is applied to a jet with probability 1/2.
- a collinear split replaces a particle by two with momentum fractions ``z`` and ``1 - z``
  (``z`` uniform in (0, 1)) in the same direction: the jet four-momentum is kept exactly,
  and so is every infrared- and collinear-safe observable (jet mass, soft-drop mass,
  N-subjettiness), while the number of particles changes.
- a soft emission moves an energy fraction ``z`` (uniform in (0, ``fraction``]) of a
  particle into a new massless particle within ``radius`` of it in (eta, phi): energy is
  kept exactly, the jet three-momentum and the IRC-safe observables change by O(``z``).

Splittings come first, then the rotation, the reflections and the boost. A new particle
follows its parent and copies the parent's other per-particle branches (identity, charge,
impact parameters); the jet's kinematic branches (``jet_pt``, ``jet_eta``, ``jet_phi``,
``jet_energy``, ``jet_mass``, ``jet_nparticles``) and the constituents' ``part_deta``,
``part_dphi`` (pseudorapidity and azimuth relative to the jet axis) are recomputed from the
augmented constituents where the chunk has them. Stored substructure (``jet_sdmass``,
``jet_tau*``) is the original jet's: these augmentations are meant for constituent inputs.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heptagon.data.transform import Table, Transform
from heptagon.physics.arrays import owner_index
from heptagon.physics.kinematics import wrap_phi

if TYPE_CHECKING:
    from collections.abc import Iterable

    from heptagon.data.io import Chunk

__all__ = [
    "MOMENTUM_BRANCHES",
    "AugmentSpec",
    "AugmentingTransform",
    "SoftSpec",
    "augment_arrays",
    "boost_along_axis",
    "collinear_split",
    "jet_momenta",
    "reflect",
    "rotate_about_axis",
    "soft_split",
]

#: the constituents' four-momentum branches, (px, py, pz, E) in GeV
MOMENTUM_BRANCHES = ("part_px", "part_py", "part_pz", "part_energy")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SoftSpec(_Model):
    """Soft emissions: each particle emits, with ``probability``, a massless particle of an
    energy fraction uniform in (0, ``fraction``] within ``radius`` of it in (eta, phi)."""

    probability: float = Field(gt=0, le=1, description="chance that a particle emits")
    fraction: float = Field(
        default=0.01, gt=0, lt=1, description="largest energy fraction of an emission"
    )
    radius: float = Field(
        default=0.1, gt=0, le=1, description="largest (eta, phi) distance from the parent"
    )


class AugmentSpec(_Model):
    """``train.augment``: which augmentations the training jets get (all off by default)."""

    rotate: bool = Field(default=False, description="rotation about the jet axis")
    reflect: bool = Field(
        default=False, description="reflections in rapidity and in phi about the jet axis"
    )
    boost: float = Field(
        default=0.0, ge=0, le=1, description="largest |rapidity| of a boost along the jet axis"
    )
    collinear_split: float = Field(
        default=0.0, ge=0, le=1, description="chance that a particle is split collinearly"
    )
    soft: SoftSpec | None = Field(default=None, description="soft emissions")

    @property
    def active(self) -> bool:
        """Whether any augmentation is on."""
        return (
            self.rotate
            or self.reflect
            or self.boost > 0
            or self.collinear_split > 0
            or self.soft is not None
        )


def jet_momenta(p: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(n_jets, 4)`` sums of the ``(n_particles, 4)`` four-momenta ``p`` of each jet."""
    index = owner_index(counts)
    return np.stack([np.bincount(index, p[:, k], minlength=len(counts)) for k in range(4)], 1)


def _axis(p: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Unit three-vector of each jet's momentum, per particle ``(n_particles, 3)``."""
    jet = jet_momenta(p, counts)[:, :3]
    norm = np.linalg.norm(jet, axis=1, keepdims=True)
    return (jet / np.where(norm > 0, norm, 1.0))[owner_index(counts)]


def rotate_about_axis(p: np.ndarray, counts: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotate each jet's constituents about its momentum axis by ``angles[jet]`` (radians)."""
    n = _axis(p, counts)
    angle = np.repeat(angles, counts)[:, None]
    v = p[:, :3]
    along = np.sum(n * v, axis=1, keepdims=True)
    rotated = v * np.cos(angle) + np.cross(n, v) * np.sin(angle) + n * along * (1 - np.cos(angle))
    return np.concatenate([rotated, p[:, 3:]], axis=1)


def reflect(
    p: np.ndarray, counts: np.ndarray, in_rapidity: np.ndarray, in_phi: np.ndarray
) -> np.ndarray:
    """Reflect the constituents of the jets where ``in_rapidity`` (``y -> 2 y_J - y``) and
    where ``in_phi`` (``phi -> 2 phi_J - phi``) is true; each is an involution that keeps
    the jet four-momentum, every pT and every pairwise (y, phi) distance."""
    jet = jet_momenta(p, counts)
    out = p.copy()
    rows = np.repeat(in_rapidity, counts)
    if rows.any():
        with np.errstate(divide="ignore", invalid="ignore"):  # jets without particles
            rapidity = 0.5 * np.log((jet[:, 3] + jet[:, 2]) / (jet[:, 3] - jet[:, 2]))
        jet_of = owner_index(counts)
        c, s = np.cosh(2 * rapidity)[jet_of], np.sinh(2 * rapidity)[jet_of]
        e, pz = p[:, 3], p[:, 2]
        out[rows, 3] = (c * e - s * pz)[rows]
        out[rows, 2] = (s * e - c * pz)[rows]
    rows = np.repeat(in_phi, counts)
    if rows.any():
        phi = np.arctan2(jet[:, 1], jet[:, 0])[owner_index(counts)]
        u = np.stack([np.cos(phi), np.sin(phi)], axis=1)
        along = np.sum(u * p[:, :2], axis=1, keepdims=True)
        out[rows, :2] = (2 * along * u - p[:, :2])[rows]
    return out


def boost_along_axis(p: np.ndarray, counts: np.ndarray, rapidities: np.ndarray) -> np.ndarray:
    """Boost each jet's constituents along its momentum axis by ``rapidities[jet]``
    (positive: the jet gains momentum); the jet mass and direction are kept."""
    n = _axis(p, counts)
    rapidity = np.repeat(rapidities, counts)[:, None]
    gamma, beta_gamma = np.cosh(rapidity), np.sinh(rapidity)
    along = np.sum(n * p[:, :3], axis=1, keepdims=True)
    e = p[:, 3:]
    momentum = p[:, :3] + ((gamma - 1) * along + beta_gamma * e) * n
    return np.concatenate([momentum, gamma * e + beta_gamma * along], axis=1)


def _with_daughters(
    chosen: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the particles after splitting the ``chosen`` ones (parent, then daughter):
    the parent row of each, whether it is a daughter, and the new counts."""
    parent = owner_index(1 + chosen.astype(np.int64))
    daughter = np.zeros(len(parent), dtype=bool)
    daughter[1:] = parent[1:] == parent[:-1]
    added = np.bincount(owner_index(counts), chosen, minlength=len(counts))  # float sums
    return parent, daughter, counts + added.astype(np.int64)


def collinear_split(
    p: np.ndarray, counts: np.ndarray, chosen: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split each ``chosen`` particle into ``z p`` and ``(1 - z) p`` (``z`` per particle).
    Returns the new four-momenta, the new counts and each new particle's parent row."""
    parent, daughter, new_counts = _with_daughters(chosen, counts)
    fraction = np.where(chosen, z, 1.0)[parent]
    fraction[daughter] = 1.0 - fraction[daughter]
    return p[parent] * fraction[:, None], new_counts, parent


def soft_split(
    p: np.ndarray,
    counts: np.ndarray,
    chosen: np.ndarray,
    z: np.ndarray,
    offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each ``chosen`` particle gives an energy fraction ``z`` to a new massless particle at
    its (eta, phi) plus ``offsets`` ``(n, 2)``; the parent keeps its direction with
    ``(1 - z)`` of its four-momentum. Returns the new four-momenta, counts and parent rows."""
    parent, daughter, new_counts = _with_daughters(chosen, counts)
    keep = np.where(chosen, 1.0 - z, 1.0)[parent]
    out = p[parent] * keep[:, None]
    src = p[parent[daughter]]
    pt = np.hypot(src[:, 0], src[:, 1])
    eta = np.arcsinh(src[:, 2] / pt) + offsets[parent[daughter], 0]
    phi = np.arctan2(src[:, 1], src[:, 0]) + offsets[parent[daughter], 1]
    energy = z[parent[daughter]] * src[:, 3]
    emitted_pt = energy / np.cosh(eta)
    out[daughter] = np.stack(
        [emitted_pt * np.cos(phi), emitted_pt * np.sin(phi), emitted_pt * np.sinh(eta), energy],
        axis=1,
    )
    return out, new_counts, parent


def _augment_momenta(
    p: np.ndarray, counts: np.ndarray, spec: AugmentSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spec's augmentations with draws from ``rng``: four-momenta, counts, parent rows."""
    parent = np.arange(len(p))
    n_jets = len(counts)
    if spec.collinear_split > 0:
        chosen = rng.random(len(p)) < spec.collinear_split
        p, counts, rows = collinear_split(p, counts, chosen, rng.random(len(p)))
        parent = parent[rows]
    if spec.soft is not None:
        chosen = rng.random(len(p)) < spec.soft.probability
        z = spec.soft.fraction * (1.0 - rng.random(len(p)))  # in (0, fraction]
        radius = spec.soft.radius * np.sqrt(rng.random(len(p)))  # uniform in the disc
        angle = rng.uniform(0, 2 * np.pi, len(p))
        offsets = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        p, counts, rows = soft_split(p, counts, chosen, z, offsets)
        parent = parent[rows]
    if spec.rotate:
        p = rotate_about_axis(p, counts, rng.uniform(0, 2 * np.pi, n_jets))
    if spec.reflect:
        p = reflect(p, counts, rng.random(n_jets) < 0.5, rng.random(n_jets) < 0.5)
    if spec.boost > 0:
        p = boost_along_axis(p, counts, rng.uniform(-spec.boost, spec.boost, n_jets))
    return p, counts, parent


def _jagged_fields(arrays: ak.Array, counts: np.ndarray) -> list[str]:
    """The per-particle fields of ``arrays`` with the constituents' counts."""
    out = []
    for name in arrays.fields:
        field = arrays[name]
        if field.ndim == 2 and np.array_equal(np.asarray(ak.num(field, axis=1)), counts):
            out.append(name)
    return out


def _derived(p: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """The jet kinematics and the constituents' (deta, dphi) of four-momenta ``p``."""
    jet = jet_momenta(p, counts)
    jet_pt = np.hypot(jet[:, 0], jet[:, 1])
    jet_eta = np.arcsinh(jet[:, 2] / np.where(jet_pt > 0, jet_pt, 1.0))
    jet_phi = np.arctan2(jet[:, 1], jet[:, 0])
    index = owner_index(counts)
    pt = np.hypot(p[:, 0], p[:, 1])
    return {
        "part_deta": np.arcsinh(p[:, 2] / np.where(pt > 0, pt, 1.0)) - jet_eta[index],
        "part_dphi": wrap_phi(np.arctan2(p[:, 1], p[:, 0]) - jet_phi[index]),
        "jet_pt": jet_pt,
        "jet_eta": jet_eta,
        "jet_phi": jet_phi,
        "jet_energy": jet[:, 3],
        "jet_mass": np.sqrt(np.maximum(jet[:, 3] ** 2 - np.sum(jet[:, :3] ** 2, axis=1), 0.0)),
        "jet_nparticles": counts,
    }


def augment_arrays(arrays: ak.Array, spec: AugmentSpec, rng: np.random.Generator) -> ak.Array:
    """The entries of ``arrays`` (which hold :data:`MOMENTUM_BRANCHES`) augmented by
    ``spec`` with draws from ``rng``; see the module docstring for what is recomputed."""
    counts = np.asarray(ak.num(arrays[MOMENTUM_BRANCHES[0]], axis=1), dtype=np.int64)
    p = np.stack(
        [np.asarray(ak.flatten(arrays[b]), dtype=np.float64) for b in MOMENTUM_BRANCHES], axis=1
    )
    p, new_counts, parent = _augment_momenta(p, counts, spec, rng)
    jagged = set(_jagged_fields(arrays, counts))
    columns: dict[str, Any] = {name: arrays[name] for name in arrays.fields}
    for name in jagged:
        columns[name] = np.asarray(ak.flatten(arrays[name]))[parent]
    for k, name in enumerate(MOMENTUM_BRANCHES):
        columns[name] = p[:, k]
    for name, value in _derived(p, new_counts).items():
        if name in columns:
            columns[name] = value
    out: dict[str, Any] = {}
    for name, value in columns.items():
        if isinstance(value, np.ndarray):
            original = arrays[name]
            dtype = np.asarray(ak.flatten(original) if name in jagged else original).dtype
            value = value.astype(dtype, copy=False)
            if name in jagged:
                value = ak.unflatten(value, new_counts)
        out[name] = value
    return ak.zip(out, depth_limit=1)


class AugmentingTransform(Transform):
    """A :class:`~heptagon.data.transform.Transform` that augments each chunk first
    (:func:`augment_arrays`), with a generator seeded by ``(seed, epoch, file name, first
    entry)``; set :attr:`epoch` before each epoch. It reads the constituents'
    four-momenta even where the data config does not use them."""

    def __init__(self, *args: Any, augment: AugmentSpec, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.augment, self.seed, self.epoch = augment, seed, 0

    def branches(self, available: Iterable[str]) -> list[str]:
        """The config's branches plus :data:`MOMENTUM_BRANCHES`."""
        needed = super().branches(available)
        return needed + [b for b in MOMENTUM_BRANCHES if b not in needed]

    def __call__(self, chunk: Chunk) -> Table:
        key = zlib.crc32(chunk.path.name.encode())
        rng = np.random.default_rng((self.seed, self.epoch, key, chunk.start))
        arrays = augment_arrays(chunk.arrays, self.augment, rng)
        return super().__call__(dataclasses.replace(chunk, arrays=arrays))
