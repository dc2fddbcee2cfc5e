"""Tiny files in the two public benchmark layouts, written as the public ones were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

N_JETS = 240


def top_landscape(path: Path, n: int = N_JETS, m: int = 40) -> Path:
    """A top-landscape store (pandas ``table``): signal jets are harder than QCD ones."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    rng = np.random.default_rng(5)
    signal = (np.arange(n) % 2).astype(np.int8)
    counts = rng.integers(5, m, n)
    real = np.arange(m)[None, :] < counts[:, None]
    pt = rng.exponential(30, (n, m)) * (1 + signal[:, None])
    eta, phi = rng.normal(0, 0.3, (n, m)), rng.normal(0, 0.3, (n, m))
    values = {
        "E": pt * np.cosh(eta),
        "PX": pt * np.cos(phi),
        "PY": pt * np.sin(phi),
        "PZ": pt * np.sinh(eta),
    }
    cols = {
        f"{key}_{i}": np.where(real[:, i], v[:, i], 0.0).astype(np.float32)
        for i in range(m)
        for key, v in values.items()
    }
    cols |= {"truthE": np.zeros(n, np.float32), "ttv": np.zeros(n, np.int8)}
    cols["is_signal_new"] = signal
    pd.DataFrame(cols).to_hdf(path, key="table", format="table")
    return path


def quark_gluon(path: Path, jets: np.ndarray | None = None, n: int = N_JETS) -> Path:
    """A quark/gluon ``.npz``: ``X`` (jets, particles, (pT, y, phi, pid)), ``y``; gluon
    jets (y = 0) have more particles."""
    if jets is None:
        rng = np.random.default_rng(6)
        m = 30
        quark = np.arange(n) % 2
        jets = np.zeros((n, m, 4))
        pids = np.array([22, 211, -211, 130, 2112, 321, -321, 11, 13])
        for i in range(n):
            c = int(rng.integers(2, 12 if quark[i] else m))
            jets[i, :c, 0] = np.sort(rng.exponential(20, c))[::-1] + 1
            jets[i, :c, 1] = rng.normal(0, 0.2, c)
            jets[i, :c, 2] = rng.normal(3.0, 0.2, c)
            jets[i, :c, 3] = rng.choice(pids, c)
    np.savez_compressed(path, X=jets, y=(np.arange(len(jets)) % 2).astype(np.float64))
    return path
