"""PDG-id facts and JetClass particle types."""

from __future__ import annotations

import numpy as np
import pytest

from heptagon.physics import pdg


def test_charges_masses_and_types() -> None:
    pid = np.array([211, -211, 22, 11, -13, 2112, 130, 310, 3122, -2212])
    q = pdg.charges(pid)
    assert q.tolist() == [1, -1, 0, -1, 1, 0, 0, 0, 0, -1]
    m = pdg.masses(pid)
    assert m[0] == pytest.approx(0.13957, abs=1e-5)
    assert m[5] == pytest.approx(0.93957, abs=1e-5)
    flags = pdg.type_flags(pdg.categories(pid, q))
    assert flags["part_isChargedHadron"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert flags["part_isMuon"].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert sum(f.astype(int) for f in flags.values()).tolist() == [1] * 10


def test_unknown_id_names_it() -> None:
    with pytest.raises(KeyError, match="9999999"):
        pdg.masses(np.array([9999999]))
