"""Fault injection through the command line itself (issue 15, items 5, 6, 7, 12): usage
errors and out-of-range numbers, interrupts (SIGINT, SIGTERM, SIGKILL) of ``heptagon
generate`` and the resume after them, and corrupt records of a generated sample."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults_helpers import assert_user_error, heptagon, no_temp_files, run_main, without_log

from heptagon.artifacts.manifest import load_manifest
from heptagon.errors import DataError

# --------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["generate", "top-vs-qcd", "--bogus"], ["No such option: --bogus", "heptagon generate"]),
        (["frobnicate"], ["frobnicate", "'heptagon --help'"]),
        (
            ["generate", "top-vs-qcd", "--jets", "many", "--seed", "1", "--out", "x"],
            ["--jets", "integer", "'heptagon generate --help'"],
        ),
    ],
    ids=["unknown-option", "unknown-command", "bad-int"],
)
def test_usage_error_is_one_line_and_exit_2(
    args: list[str], names: list[str], tmp_path: Path
) -> None:
    res = heptagon(*args, cwd=tmp_path)
    assert_user_error(res, *names)
    assert not (tmp_path / "x").exists()


#: out-of-range numbers of every command kind (the rest of each command line is valid)
OUT_OF_RANGE = [
    ("--jets", ["generate", "top-vs-qcd", "--jets", "0", "--seed", "1", "--out", "o"]),
    ("--shard-size", ["generate", "qg", "--jets", "9", "--seed", "1", "--out", "o",
                      "--shard-size", "0"]),
    ("--jobs", ["generate", "qg", "--jets", "9", "--seed", "1", "--out", "o", "--jobs", "0"]),
    ("--seed", ["generate", "qg", "--jets", "9", "--seed", "-2", "--out", "o"]),
    ("--events", ["generate-events", "tth", "--events", "-1", "--seed", "1", "--out", "o"]),
    ("--efficiency", ["ddt", "run", "--efficiency", "2"]),
    ("--lumi", ["evaluate", "run", "--lumi", "-1"]),
    ("--threads", ["predict", "m.onnx", "f.parquet", "--out", "o", "--threads", "-3"]),
    ("--max-entries", ["data", "inspect", "f.parquet", "--config", "c.yaml",
                       "--max-entries", "0"]),
    ("--runs", ["dqm", "simulate", "--out", "o", "--runs", "0"]),
    ("--quantile", ["dqm", "train", "d", "--out", "o", "--quantile", "1.5"]),
    ("--events", ["mlpf", "generate", "ttbar", "--events", "0", "--out", "o"]),
    ("--val-fraction", ["mlpf", "train", "--data", "d", "--out", "o", "--val-fraction", "2"]),
    ("--batch", ["trigger", "speed", "m.onnx", "--batch", "0"]),
    ("--threads", ["trigger", "speed", "m.onnx", "--threads", "-3"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("option", "argv"), OUT_OF_RANGE, ids=[f"{argv[0]}-{option}" for option, argv in OUT_OF_RANGE]
)
def test_out_of_range_number_is_a_usage_error(
    option: str,
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """In-process through :func:`heptagon.cli.main` (the real path, without the ~3 s of a
    subprocess): nothing runs, one line names the option and the command's help."""
    monkeypatch.chdir(tmp_path)
    res = run_main(monkeypatch, capsys, *argv)
    err = res.stderr.strip()
    assert res.returncode == 2, err
    assert len(err.splitlines()) == 1, err
    assert option in err, err
    assert "heptagon: error: Invalid value" in err, err
    assert f"'heptagon {argv[0]}" in err, err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ interrupts and resume

#: a tiny, fast sample: 2 classes x 10 shards of 8 hadron-level jets
GEN = ["generate", "top-vs-qcd", "--jets", "80", "--shard-size", "8", "--seed", "5",
       "--detector", "none"]  # fmt: skip
N_SHARDS = 20


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (sidecars, settings and manifest included)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The checksums of the sample made in one uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "sample"
    res = heptagon(*GEN, "--out", str(out))
    assert res.returncode == 0, res.stderr
    return checksums(out)


def start_and_stop(out: Path, jobs: int, stop: signal.Signals, group: bool = False) -> str:
    """Start generating into ``out``; once the first shard is complete, send ``stop`` (to
    the whole process group if ``group``, as a terminal's Ctrl-C does). Returns stderr
    after asserting the exit status of the signal."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "heptagon", *GEN, "--out", str(out), "--jobs", str(jobs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
    )
    deadline = time.monotonic() + 120
    while not list((out / "shards").glob(".*.json")):  # a sidecar: a finished shard
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no shard was finished"
        time.sleep(0.02)
    if group:
        os.killpg(proc.pid, stop)
    else:
        proc.send_signal(stop)
    proc.wait(timeout=120)  # reaped, as a shell does: the workers see it is gone
    _, err = proc.communicate(timeout=30)  # EOF once every helper process has exited
    expected = -signal.SIGKILL if stop == signal.SIGKILL else 130
    assert proc.returncode == expected, err
    return without_log(err)


@pytest.mark.parametrize(
    ("jobs", "stop", "group"),
    [
        (1, signal.SIGINT, False),
        (2, signal.SIGINT, True),  # Ctrl-C in a terminal: every process gets SIGINT
        (2, signal.SIGTERM, False),  # a batch system's kill
    ],
    ids=["jobs1-sigint", "jobs2-ctrl-c-group", "jobs2-sigterm"],
)
def test_interrupted_generate_says_what_was_kept_and_resumes_to_the_same_bytes(
    jobs: int, stop: signal.Signals, group: bool, tmp_path: Path, reference: dict[str, str]
) -> None:
    out = tmp_path / "sample"
    err = start_and_stop(out, jobs, stop, group)
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("heptagon: interrupted: "), err
    assert f"of {N_SHARDS} shards are complete in {out}" in err, err
    assert "run the same command again to resume" in err, err
    kept = int(err.split("interrupted: ")[1].split(" of ")[0])
    assert 1 <= kept < N_SHARDS
    shards = out / "shards"
    assert len(list(shards.glob(".*.json"))) == kept  # every finished shard, verified
    no_temp_files(out)
    assert not (out / "manifest.json").exists()

    res = heptagon(*GEN, "--out", str(out), "--jobs", str(jobs))
    assert res.returncode == 0, res.stderr
    assert checksums(out) == reference


def test_killed_generate_resumes_to_the_same_bytes(
    tmp_path: Path, reference: dict[str, str]
) -> None:
    """SIGKILL cannot be handled: whatever it leaves, the next run cleans and completes."""
    out = tmp_path / "sample"
    start_and_stop(out, 2, signal.SIGKILL)
    res = heptagon(*GEN, "--out", str(out), "--jobs", "2")
    assert res.returncode == 0, res.stderr
    assert checksums(out) == reference


# ------------------------------------------------------------------ corrupt records


@pytest.mark.parametrize(
    "record", ["shards/.QCD_0000.parquet.json", ".generate.json"], ids=["sidecar", "settings"]
)
def test_resume_into_a_corrupt_record_names_it(record: str, tmp_path: Path) -> None:
    out = tmp_path / "sample"
    out.joinpath("shards").mkdir(parents=True)
    (out / record).write_bytes(b'{"file": "shards/QCD_0000.par')  # truncated
    if record.startswith("shards/"):
        (out / "shards" / "QCD_0000.parquet").write_bytes(b"PAR1")
    res = heptagon(*GEN, "--out", str(out))
    assert_user_error(res, str(out / record), "corrupt")


def test_corrupt_manifest_is_a_data_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_bytes(os.urandom(64))
    with pytest.raises(DataError, match=r"manifest\.json: corrupt") as err:
        load_manifest(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "manifest.json").write_text("[1, 2]\n")
    with pytest.raises(DataError, match="not a JSON object"):
        load_manifest(tmp_path)
    shutil.rmtree(tmp_path)
    with pytest.raises(DataError, match=r"no manifest\.json"):
        load_manifest(tmp_path)
