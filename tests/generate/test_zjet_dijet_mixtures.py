"""The ``zjet-vs-dijet`` sample: two natural quark/gluon mixtures labelled by production
process, with the true flavour of each jet's hard parton in ``jet_parton_id``."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from heptagon.generate.run import GenerateOptions, generate

HARD_PARTONS = {1, 2, 3, 4, 5, 21}


def test_zjet_is_richer_in_quarks_than_dijet(tmp_path: Path) -> None:
    summary = generate(
        GenerateOptions(sample="zjet-vs-dijet", jets=40, seed=7, out=tmp_path),
        show_progress=False,
    )
    assert summary.manifest.to_json()["selection"]["pt_min"] == 200.0
    assert "jet_parton_id" in summary.manifest.to_json()["branches"]
    quark_fraction = {}
    for cls, other in (("Zjet", "dijet"), ("dijet", "Zjet")):
        jets = ak.from_parquet(tmp_path / "shards" / f"{cls}_0000.parquet")
        assert len(jets) == 40
        assert ak.all(jets[f"label_{cls}"])
        assert not ak.any(jets[f"label_{other}"])
        pid = np.abs(ak.to_numpy(jets.jet_parton_id))
        assert set(pid) <= HARD_PARTONS
        assert {21} < set(pid)  # both quarks and gluons: a mixture, not a pure sample
        quark_fraction[cls] = float(np.mean(pid != 21))
        pt = ak.to_numpy(jets.jet_pt)
        assert np.all((pt >= 200.0) & (pt < 250.0))
    # Z + jet is dominated by qg -> Zq, dijets at 200 GeV by gg -> gg and qg -> qg
    assert quark_fraction["Zjet"] > quark_fraction["dijet"] + 0.25, quark_fraction
