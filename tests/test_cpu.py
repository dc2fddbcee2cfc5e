"""Thread counts from the CPU affinity and the cgroup CPU quota (heptagon.cpu)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

import heptagon.cpu
from heptagon.cli import app
from heptagon.cpu import (
    available_cpus,
    cgroup_cpus,
    configure_threads,
    machine_is_shared,
    set_wait_policy,
    thread_count,
)
from heptagon.errors import ConfigError, HeptagonError
from heptagon.publish.onnx import make_session

JOB = "/slurm/job_7"


def _cgroups(tmp_path: Path, files: dict[str, str], self_cgroup: str) -> tuple[Path, Path]:
    """A fake cgroup mount (``files``: path under it -> content) and /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = tmp_path / "self_cgroup"
    proc.write_text(self_cgroup)
    return root, proc


@pytest.fixture
def four_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heptagon.cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", 4), ("150000 100000\n", 1), ("200000 100000\n", 2), ("50000 100000", 1)],
)
@pytest.mark.usefixtures("four_cpus")
def test_cgroup_v2_quota_rounds_down_to_at_least_one(
    tmp_path: Path, cpu_max: str, expected: int
) -> None:
    root, proc = _cgroups(tmp_path, {f"{JOB}/cpu.max": cpu_max}, f"0::{JOB}\n")
    assert available_cpus(root, proc) == expected


@pytest.mark.usefixtures("four_cpus")
def test_cgroup_v2_smallest_quota_of_the_cgroup_and_its_parents(tmp_path: Path) -> None:
    files = {"/slurm/cpu.max": "300000 100000", f"{JOB}/cpu.max": "max 100000"}
    root, proc = _cgroups(tmp_path, files, f"0::{JOB}\n")
    assert cgroup_cpus(root, proc) == 3.0
    assert available_cpus(root, proc) == 3


@pytest.mark.usefixtures("four_cpus")
def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    files = {f"cpu/{JOB}/cpu.cfs_quota_us": "250000\n", f"cpu/{JOB}/cpu.cfs_period_us": "100000\n"}
    root, proc = _cgroups(tmp_path, files, f"4:cpu,cpuacct:{JOB}\n3:memory:{JOB}\n")
    assert cgroup_cpus(root, proc) == 2.5
    assert available_cpus(root, proc) == 2
    (root / "cpu" / JOB.lstrip("/") / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpus(root, proc) is None
    assert available_cpus(root, proc) == 4


def test_affinity_bounds_the_count_without_a_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heptagon.cpu.os, "sched_getaffinity", lambda pid: {3})
    root, proc = _cgroups(tmp_path, {}, "")  # nothing to read: no quota
    assert cgroup_cpus(root, proc) is None
    assert available_cpus(root, proc) == 1


@pytest.mark.parametrize(
    ("loadavg", "quota", "shared"),
    [
        ("0.10 0.20 0.30 1/200 999\n", None, False),  # only this process runs
        ("0.10 0.20 0.30 2/200 999\n", None, True),  # another one runs right now
        ("1.90 1.80 1.30 1/200 999\n", None, False),  # work that has ended: not shared now
        ("0.10 0.20 0.30 1/200 999\n", "100000 100000", True),  # a quota counts spinning
    ],
)
def test_machine_is_shared(tmp_path: Path, loadavg: str, quota: str | None, shared: bool) -> None:
    root, proc = _cgroups(tmp_path, {"cpu.max": quota} if quota else {}, "0::/\n")
    (tmp_path / "loadavg").write_text(loadavg)
    tasks = tmp_path / "task"
    (tasks / "1").mkdir(parents=True)
    (tasks / "1" / "stat").write_text("1 (python) R 0 1\n")  # the asking thread
    assert machine_is_shared(root, proc, tmp_path / "loadavg", tasks) is shared


@pytest.mark.parametrize(
    ("environ", "shared", "expected"),
    [
        ({}, True, {"OMP_WAIT_POLICY": "PASSIVE"}),
        ({}, False, {}),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, True, {"OMP_WAIT_POLICY": "ACTIVE"}),
        ({"KMP_BLOCKTIME": "200"}, True, {"KMP_BLOCKTIME": "200"}),
    ],
)
def test_set_wait_policy_only_on_a_shared_machine_and_never_over_the_user(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], shared: bool, expected: dict
) -> None:
    monkeypatch.setattr(heptagon.cpu, "machine_is_shared", lambda: shared)
    set_wait_policy(environ)
    assert environ == expected


def _torch_threads(code: str) -> list[int]:
    """Run ``code`` in a fresh interpreter (torch's pools are per process); it prints ints."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return [int(x) for x in done.stdout.split()]


def test_configure_threads_sets_torch_pools() -> None:
    code = (
        "import torch; from heptagon.cpu import configure_threads, available_cpus\n"
        "n = configure_threads(1); m = configure_threads(None)\n"
        "print(n, m, available_cpus(), torch.get_num_threads(), torch.get_num_interop_threads())"
    )
    one, chosen, available, intra, interop = _torch_threads(code)
    assert one == 1
    assert 1 <= chosen <= available  # thread_count: fewer while other work runs
    assert intra == chosen
    assert interop == 1  # sized by the first call; torch cannot resize it later


def test_configure_threads_rejects_below_one() -> None:
    with pytest.raises(ConfigError, match="threads"):
        configure_threads(0)


def test_train_threads_option_sets_torch_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    seen: list[int] = []

    def fake_train(*args: object, **kwargs: object) -> None:
        seen.append(torch.get_num_threads())
        raise HeptagonError("stop here")

    before = torch.get_num_threads()
    monkeypatch.setattr(heptagon.cpu, "_interop_configured", True)  # leave pytest's pool be
    monkeypatch.setattr("heptagon.train.run.train", fake_train)
    try:
        args = ["train", "x.yaml", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
        result = CliRunner().invoke(app, [*args, "--threads", "1"])
    finally:
        torch.set_num_threads(before)
    assert isinstance(result.exception, HeptagonError)
    assert seen == [1]
    assert CliRunner().invoke(app, [*args, "--threads", "0"]).exit_code == 2


def _identity_model() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_onnx_sessions_take_the_available_cpus_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("heptagon.publish.onnx.thread_count", lambda: 3)
    model = _identity_model()
    assert make_session(model).get_session_options().intra_op_num_threads == 3
    assert make_session(model, threads=2).get_session_options().intra_op_num_threads == 2


@pytest.mark.parametrize(
    ("runnable", "own", "expected"),
    [("1/300", 1, 4), ("2/300", 1, 3), ("4/300", 1, 1), ("9/300", 1, 1), ("3/300", 3, 4),
     ("5/300", 2, 1), ("garbage", 1, 4)],
)  # fmt: skip
def test_thread_count_leaves_the_cores_other_work_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runnable: str, own: int, expected: int
) -> None:
    """4 CPUs, no quota: one thread fewer per runnable task that is not one of this
    process's own runnable threads, at least 1; an unreadable loadavg changes nothing."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(f"0.50 0.40 0.30 {runnable} 12345\n" if "/" in runnable else runnable)
    tasks = tmp_path / "task"
    for i, state in enumerate(["R"] * own + ["S", "D"]):
        (tasks / str(100 + i)).mkdir(parents=True)
        (tasks / str(100 + i) / "stat").write_text(f"{100 + i} (py thread) {state} 1 2 3\n")
    no_cgroup = tmp_path / "nocgroup"
    no_cgroup.mkdir()
    assert thread_count(no_cgroup, tmp_path / "self", loadavg, tasks) == expected


def test_own_runnable_threads_are_read_from_proc() -> None:
    assert heptagon.cpu._own_runnable(heptagon.cpu.SELF_TASKS) >= 1  # the asking thread
