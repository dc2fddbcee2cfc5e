"""Building blocks of ``benchmarks/train_speed.py`` (the benchmark itself is too long for
the suite): ``--profile``'s kind and tensors of each op and its breakdown of a profiled ParT
training step by phase; ``--clock cpu``."""

from __future__ import annotations

import math
import time

import pytest
import train_speed as bench  # benchmarks/ is on pytest's pythonpath


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("aten::mm", "matmul"),
        ("aten::baddbmm", "matmul"),
        ("aten::_softmax_backward_data", "softmax"),
        ("aten::gelu_backward", "GELU"),
        ("aten::native_layer_norm", "LayerNorm"),
        ("aten::native_batch_norm_backward", "BatchNorm"),
        ("aten::mul", "other"),
        ("aten::matmul", "other"),  # a wrapper: its mm is counted, not it
    ],
)
def test_op_kind(name: str, kind: str) -> None:
    assert bench.op_kind(name) == kind


def test_op_tensors() -> None:
    batch, n, heads = 64, 50, 8
    assert bench.op_tensors([[batch * heads, n, n], [batch * heads, n, 16]], batch, n, 8) == (
        "attention"
    )
    assert bench.op_tensors([[batch, heads, n, n], []], batch, n, heads) == "attention"
    pairs = batch * n * (n + 1) // 2
    assert bench.op_tensors([[pairs, 64], [64]], batch, n, heads) == "pair"
    assert bench.op_tensors([[batch * heads, 1, 1 + n]], batch, n, heads) == "attention"
    # the particles' tokens, flattened for a linear layer, and a head-sized tensor
    assert bench.op_tensors([[batch * n, 128], [384, 128]], batch, n, heads) == "particle"
    assert bench.op_tensors([[batch, n, n]], batch, n, heads) == "particle"


def test_breakdown_of_a_part_step() -> None:
    result = bench.profile_step("part-lite", 10, 1)
    rows = result["ops"]
    assert math.isclose(sum(r["fraction"] for r in rows), 1.0, rel_tol=1e-9)
    assert [r["s_per_step"] for r in rows] == sorted((r["s_per_step"] for r in rows), reverse=True)
    keys = {(r["phase"], r["tensors"], r["kind"]) for r in rows}
    assert {r["phase"] for r in rows} == set(bench.PHASES)
    # the attention's logits, softmax and its backward; the pair embedding's BatchNorm
    for phase in ("forward", "backward"):
        assert (phase, "attention", "softmax") in keys
        assert (phase, "attention", "matmul") in keys
        assert (phase, "pair", "BatchNorm") in keys
        assert (phase, "pair", "matmul") in keys
        assert (phase, "particle", "LayerNorm") in keys
    # softmax elsewhere: the loss's log-softmax of (batch, classes) only (its share of the
    # time is not asserted: microseconds at this size, which a loaded machine can reverse)
    others = [r for r in rows if r["kind"] == "softmax" and r["tensors"] != "attention"]
    assert {r["tensors"] for r in others} <= {"particle"}
    assert ("forward", "-", "outside ops") in keys
    # the optimizer works on parameters only
    assert {k[1] for k in keys if k[0] == "optimizer"} <= {"particle", "-"}
    assert result["wall_s_per_step"] > 0


def test_cpu_clock_counts_this_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def idle() -> int:  # waits without working, as when other processes hold the cores
        time.sleep(0.2)
        return 10

    assert bench.timed(idle) < 10 / 0.2
    monkeypatch.setattr(bench, "clock", bench.CLOCKS["cpu"])
    assert bench.timed(idle) > 10 * 10 / 0.2
