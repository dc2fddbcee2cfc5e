"""Logs a batch job can read: one line per epoch / shard on stderr without a terminal,
``--quiet``, ``--verbose``, ``--log-file`` (timestamps), a library that configures no
logging itself, and TensorBoard event files from the same per-epoch records."""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from heptagon.errors import ConfigError
from heptagon.logs import configure, get_logger
from heptagon.train import train

CONFIGS = Path(__file__).parents[1] / "configs"

#: a stderr line of an epoch: ``HH:MM:SS heptagon.train: epoch 1/2 step 19, train loss ...``
EPOCH = re.compile(
    r"^\d\d:\d\d:\d\d heptagon\.train: epoch (\d+)/2 step \d+, train loss (\S+), "
    r"val loss (\S+), val AUC \S+, val accuracy \S+, lr \S+, \d+ jets/s, [\d.]+ s$",
    re.MULTILINE,
)


def heptagon(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command with stdout and stderr captured (no terminal: a batch job)."""
    return subprocess.run(
        [sys.executable, "-m", "heptagon", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    path = tmp_path / "mlp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": str(CONFIGS / "data" / "top_jet.yaml"),
                "model": {"name": "mlp", "options": {"hidden": [16]}},
                "train": {"epochs": 4, "batch_size": 32, "lr": 5e-3},
            }
        )
    )
    return path


def _train(experiment: Path, data: Path, out: Path, *options: str) -> str:
    res = heptagon(
        *options, "train", str(experiment), "--data", str(data), "--out", str(out),
        "--set", "train.epochs=2",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stderr


def test_train_logs_one_line_per_epoch(
    experiment: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    stderr = _train(experiment, top_qcd_sample, tmp_path / "run")
    lines = EPOCH.findall(stderr)
    assert [int(epoch) for epoch, _, _ in lines] == [1, 2], stderr
    assert all(math.isfinite(float(train)) and math.isfinite(float(val)) for _, train, val in lines)
    # the line is the history record's: the same validation loss
    history = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert [f"{json.loads(h)['val_loss']:.4g}" for h in history] == [v for _, _, v in lines]


def test_quiet_with_a_log_file(experiment: Path, top_qcd_sample: Path, tmp_path: Path) -> None:
    """README's batch-job command: ``heptagon --quiet --log-file F train ... --set ...``."""
    log = tmp_path / "train.log"
    stderr = _train(experiment, top_qcd_sample, tmp_path / "run", "--quiet", "--log-file", str(log))
    assert "heptagon.train" not in stderr
    epochs = re.findall(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO heptagon\.train: epoch (\d)/2 ",
        log.read_text(),
        re.MULTILINE,
    )
    assert epochs == ["1", "2"]


def test_generate_logs_one_line_per_shard(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    args = ("generate", "top-vs-qcd", "--jets", "4", "--seed", "3", "--shard-size", "2")
    res = heptagon(*args, "--out", str(out))
    assert res.returncode == 0, res.stderr
    done = re.findall(
        r"^\d\d:\d\d:\d\d heptagon\.generate: shard (\d)/4 done: \w+_\d{4}\.parquet, 2 jets, "
        r"[\d.]+ s$",
        res.stderr,
        re.MULTILINE,
    )
    assert sorted(done) == ["1", "2", "3", "4"]
    rerun = heptagon(*args, "--out", str(out))  # every shard already there: nothing made
    assert rerun.returncode == 0
    assert "heptagon.generate" not in rerun.stderr


def test_an_unwritable_log_file_is_one_error_line(tmp_path: Path) -> None:
    res = heptagon("--log-file", str(tmp_path / "missing" / "x.log"), "info")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"heptagon: error: {tmp_path / 'missing' / 'x.log'}: cannot write the log file "
        "(No such file or directory)"
    ]


def test_quiet_and_verbose_exclude_each_other() -> None:
    res = heptagon("--quiet", "--verbose", "info")
    assert res.returncode == 2
    assert "--quiet and --verbose exclude each other" in res.stderr


def test_the_library_configures_no_logging() -> None:
    import heptagon.cli  # noqa: F401  (importing the command line configures nothing either)

    assert logging.getLogger("heptagon").handlers == []


def test_configure_levels(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "debug.log"  # (tests/conftest.py undoes the set-up)
    configure(logging.DEBUG, log)
    get_logger("test").debug("a debug record")
    configure(logging.WARNING, log)  # replaces the first set-up; the file still gets INFO
    get_logger("test").info("an info record")
    get_logger("test").debug("not written")
    err = capfd.readouterr().err
    assert re.fullmatch(r"\d\d:\d\d:\d\d heptagon\.test: a debug record\n", err), err
    written = log.read_text()
    assert "DEBUG heptagon.test: a debug record" in written
    assert "INFO heptagon.test: an info record" in written
    assert "not written" not in written


#: in-process runs: two epochs, no progress bar, TensorBoard on
BOARD = ["train.epochs=2", "train.progress=false", "train.tensorboard=true"]


def test_tensorboard_without_the_package_is_a_config_error(
    experiment: Path, top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not importable
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"^train\.tensorboard: needs the tensorboard package"):
        train(experiment, top_qcd_sample, run, overrides=BOARD)
    assert not run.exists()  # nothing left behind


def test_tensorboard_event_files_hold_the_history(
    experiment: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")  # the 'tensorboard' extra
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(experiment, top_qcd_sample, run, overrides=BOARD)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    for key in ("train_loss", "val_loss", "val_auc", "lr"):
        scalars = events.Scalars(key)
        assert [e.step for e in scalars] == [h["step"] for h in history]
        assert [e.value for e in scalars] == pytest.approx([h[key] for h in history], rel=1e-6)
