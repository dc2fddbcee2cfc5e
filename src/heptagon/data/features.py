"""Standard derived jet-constituent features, available by name in any data config.

Each feature is an expression in :mod:`heptagon.data.expr` over the JetClass branches, as
in the JetClass / weaver configs. A feature is computed only when a config references it,
and a branch of the same name in the file (or a ``new_variables`` entry) takes precedence.
Units: GeV, radians; ``part_d0val`` / ``part_dzval`` in mm. Transverse momentum and dR are
written as square roots of sums of squares rather than ``hypot``: numpy's float32 ``hypot``
is ~6x slower, and GeV-scale values are far from float32 overflow.
"""

from __future__ import annotations

from heptagon.data.event_features import EVENT_FEATURES
from heptagon.data.expr import Expr

__all__ = ["FEATURES", "feature"]

#: name -> expression defining it
FEATURES: dict[str, str] = {
    "part_pt": "sqrt(part_px * part_px + part_py * part_py)",
    "part_pt_log": "log(part_pt)",
    "part_e_log": "log(part_energy)",
    "part_rel_pt": "part_pt / jet_pt",
    "part_rel_e": "part_energy / jet_energy",
    "part_logptrel": "log(part_pt / jet_pt)",
    "part_logerel": "log(part_energy / jet_energy)",
    "part_deltaR": "sqrt(part_deta * part_deta + part_dphi * part_dphi)",
    "part_eta": "jet_eta + part_deta",
    "part_phi": "wrap_phi(jet_phi + part_dphi)",
    "part_d0": "tanh(part_d0val)",
    "part_dz": "tanh(part_dzval)",
    "part_mask": "ones_like(part_energy)",
    **EVENT_FEATURES,  # event level: NanoAOD-style jets, leptons, MET
}

_PARSED = {name: Expr(text, f"features.{name}") for name, text in FEATURES.items()}


def feature(name: str) -> Expr | None:
    """The expression of the standard feature ``name``, or None if there is none."""
    return _PARSED.get(name)
