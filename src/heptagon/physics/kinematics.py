"""Kinematic helpers over numpy / awkward arrays. Units: GeV, radians, phi in (-pi, pi]."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["delta_phi", "delta_r", "wrap_phi"]


def wrap_phi(phi: Any) -> Any:
    """Wrap an angle (array) into (-pi, pi]."""
    out = np.mod(phi + np.pi, 2 * np.pi) - np.pi
    return np.where(out <= -np.pi, out + 2 * np.pi, out)


def delta_phi(phi1: Any, phi2: Any) -> Any:
    """phi1 - phi2 wrapped into (-pi, pi]."""
    return wrap_phi(phi1 - phi2)


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """sqrt(deta^2 + dphi^2), broadcasting like numpy / awkward."""
    return np.sqrt((eta1 - eta2) ** 2 + delta_phi(phi1, phi2) ** 2)
