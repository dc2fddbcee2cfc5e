"""MLPF and the rule-based PF with pile-up: PUPPI on their particles (with_puppi) and
`heptagon mlpf evaluate` reporting both with and without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from heptagon.apps.mlpf.metrics import pf_metrics, with_puppi
from heptagon.apps.mlpf.pf import rule_based_pf
from heptagon.apps.mlpf.run import load_elements
from heptagon.apps.mlpf.training import MLPFTrainOptions, train_mlpf
from heptagon.cli import app
from heptagon.generate.elements import ElementOptions, generate_elements
from heptagon.physics.puppi import MitigationConfig

MU = 30.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ttbar_pileup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlpf-pu") / "ttbar"
    generate_elements(
        ElementOptions(
            sample="ttbar", events=10, seed=3, out=out, shard_size=10, pileup=MU,
            pileup_library=60,
        ),
        show_progress=False,
    )  # fmt: skip
    return out


def test_puppi_on_pf_particles(ttbar_pileup: Path) -> None:
    el = load_elements(ttbar_pileup)
    pf = rule_based_pf(el)
    puppi = with_puppi(pf, el, MU)
    # charged particles from tracks: kept whole within the dz cut of the hard scatter
    event = pf.event
    from_track = (pf.charge != 0) & (pf.element < el.n_tracks[event])
    start = np.cumsum(el.n_tracks) - el.n_tracks
    dz = el.track["dz"][start[event[from_track]] + pf.element[from_track]]
    near = np.abs(dz) < MitigationConfig().dz_cut_mm
    assert 0 < near.sum() < 0.5 * near.size  # most tracks are pile-up at mu = 30
    kept = {(int(e), int(i)) for e, i in zip(puppi.event, puppi.element, strict=True)}
    keys = list(zip(event[from_track].tolist(), pf.element[from_track].tolist(), strict=True))
    assert [k in kept for k in keys] == near.tolist()
    assert puppi.pt.size < 0.3 * pf.pt.size
    # jets and MET closer to the generator's with PUPPI
    before, after = pf_metrics(pf, el), pf_metrics(puppi, el)
    assert before["jets"]["response_median"] > 1.1
    assert abs(after["jets"]["response_median"] - 1) < abs(before["jets"]["response_median"] - 1)
    assert after["met"]["resolution_xy_gev"] < before["met"]["resolution_xy_gev"]


def test_evaluate_reports_puppi_with_pileup(ttbar_pileup: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_mlpf(
        MLPFTrainOptions(
            data=ttbar_pileup, out=run, epochs=1, width=16, n_layers=1, bin_size=32, lr=3e-3
        )
    )
    res = CliRunner().invoke(app, ["mlpf", "evaluate", str(run), "--data", str(ttbar_pileup)])
    assert res.exit_code == 0, res.output
    assert "pf_puppi" in res.output
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["pileup"] == MU
    for algo in ("mlpf", "mlpf_puppi", "pf", "pf_puppi", "truth"):
        assert set(metrics[algo]) == {"particles", "jets", "met"}, algo


def test_element_shards_with_pileup_retain_freed_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the jet shards (docs/pileup.md, "Cost"): only with pile-up, once per shard."""
    from heptagon.generate import elements

    retained: list[int] = []
    monkeypatch.setattr(elements, "retain_freed_memory", lambda: bool(retained.append(1)))
    common = {"sample": "gun", "events": 4, "seed": 2, "shard_size": 2}
    generate_elements(ElementOptions(**common, out=tmp_path / "no-pu"), show_progress=False)
    assert retained == []
    with_pileup = ElementOptions(**common, out=tmp_path / "pu", pileup=5.0, pileup_library=20)
    generate_elements(with_pileup, show_progress=False)
    assert retained == [1, 1]
