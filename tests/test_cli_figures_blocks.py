"""Building blocks of benchmarks/cli_figures.py (its parts run the benchmarks: too long for
the suite): the statistical errors that make a figure's spread, the benchmarks' test
sizes, and the continual conditions as ``heptagon generate --detector-set`` items."""

from __future__ import annotations

from pathlib import Path

import _trigger_data as samples  # benchmarks/ is on pytest's pythonpath
import cli_figures as figures
import numpy as np
import pytest
from scipy.stats import ks_2samp

from heptagon.generate.detector import DetectorConfig
from heptagon.generate.options import GenerateOptions


@pytest.mark.parametrize(("n", "m"), [(450, 9000), (1200, 1200), (30, 70)])
def test_auc_error_at_half_is_the_mann_whitney_null_variance(n: int, m: int) -> None:
    assert figures.auc_error(0.5, n, m) == pytest.approx(((n + m + 1) / (12 * n * m)) ** 0.5)


def test_auc_error_shrinks_with_the_test_jets_and_towards_one() -> None:
    assert figures.auc_error(0.9, 4000, 4000) < figures.auc_error(0.9, 1000, 1000)
    assert figures.auc_error(0.99, 1000, 1000) < figures.auc_error(0.9, 1000, 1000)


def test_the_ks_bootstrap_error_is_the_spread_of_independent_samples() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 1.0, 300), rng.normal(0.2, 1.0, 500)
    independent = [
        ks_2samp(rng.normal(0.0, 1.0, 300), rng.normal(0.2, 1.0, 500)).statistic for _ in range(200)
    ]
    bootstrap = figures.ks_error(a, b)
    assert bootstrap == figures.ks_error(a, b)  # seeded
    assert 0.6 < bootstrap / np.std(independent, ddof=1) < 1.6


def test_quadrature_and_the_benchmarks_test_sizes() -> None:
    assert figures.quadrature(3.0, 4.0) == 5.0
    assert figures.quadrature() == 0.0
    # pnn.py / domain_adaptation.py: the first int(0.7 n) jets train, the rest test
    assert figures.test_size(1500) == 450
    assert figures.test_size(30000) == 9000
    assert figures.test_size(7) == 3


def test_a_row_is_within_its_spread_or_not() -> None:
    inside = figures.row("x", 100.0, 90.0, 10.0)
    assert inside["difference"] == -10.0
    assert inside["ratio"] == 0.9
    assert inside["within_spread"] is True
    assert figures.row("x", 100.0, 89.0, 10.0)["within_spread"] is False
    assert figures.row("x", 1.0, 1.0, None)["within_spread"] is None


@pytest.mark.parametrize("condition", list(samples.CONDITIONS)[1:])
def test_the_conditions_survive_the_command_line(condition: str, tmp_path: Path) -> None:
    knobs = samples.CONDITIONS[condition]
    opts = GenerateOptions(
        sample="Wqq", jets=1, seed=1, out=tmp_path, detector_set=samples.detector_set(knobs)
    )
    assert DetectorConfig(**opts.detector_knobs) == DetectorConfig(**knobs)
    assert DetectorConfig(**knobs) != DetectorConfig()


def test_a_work_dir_gets_this_checkouts_configs(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "configs").symlink_to(tmp_path / "removed-worktree" / "configs")  # dangling
    figures.Route(work)
    assert (work / "configs").resolve() == (figures.ROOT / "configs").resolve()
    figures.Route(work)  # a second part in the same work dir keeps it
    assert (work / "configs" / "pnn_xbb.yaml").exists()


def test_a_parts_record_ends_with_provenance_commands_and_rows(tmp_path: Path) -> None:
    cli = figures.Route(tmp_path / "w")
    (cli.work / "made").mkdir()
    cli("generate", "Wqq", "--out", "made", done="made")  # made already: recorded, not run
    bench = {"source": "rerun", "command": "python pnn.py", "figures": {"auc": 0.9}}
    rows = [figures.row("auc", 0.9, 0.91, 0.02)]
    record = cli.record(bench, None, rows)
    assert list(record) == ["benchmark", "same_jets", "commands", "cli_wall_s", "rows"]
    assert record["benchmark"] == {"source": "rerun", "command": "python pnn.py", "commit": None}
    assert record["commands"] == ["heptagon generate Wqq --out made"]
    assert record["cli_wall_s"] == 0.0
    assert record["rows"] is rows
