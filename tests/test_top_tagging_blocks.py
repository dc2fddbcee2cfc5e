"""Building blocks of benchmarks/top_tagging.py (the benchmark itself is too long for the
suite): the learning curve's nested shards, the small-data recipe's schedule in a cut run,
the verdict against the BDT and the choice of the curve's networks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from heptagon.models import registry

ROOT = Path(__file__).resolve().parents[1]


_known = dict(registry._REGISTRY)
try:
    import top_tagging as bench  # benchmarks/ is on pytest's pythonpath
finally:  # its weaver-core model stays out of the registry the other tests see
    registry._REGISTRY.clear()
    registry._REGISTRY.update(_known)


def stat(mean: float, spread: float | None, n: int = 3) -> dict[str, Any]:
    return {"mean": mean, "spread": spread, "n": n, "missing": 0, "bootstrap_err": None}


def model_summary(auc: float, auc_spread: float, rej: float, rej_spread: float) -> dict[str, Any]:
    return {
        "auc": stat(auc, auc_spread),
        "0.3": stat(rej, rej_spread),
        "0.5": stat(rej, rej_spread),
    }


def test_learning_curve_takes_the_first_shards_of_each_class(tmp_path: Path) -> None:
    plan = bench.Plan(2000, 1, 1, ("bdt",), tmp_path, (500, 1000, 2000), shard=500)
    plan.sample.mkdir(parents=True)
    files = [
        {"class": c, "file": f"shards/{c}_{i:04d}.parquet", "entries": 500}
        for i in (3, 0, 2, 1)  # the manifest's order does not matter
        for c in ("Tbqq", "QCD")
    ]
    (plan.sample / "manifest.json").write_text(json.dumps({"files": files}))
    names = sorted(p.name for p in bench.first_shards(plan, 1000))
    assert names == [
        "QCD_0000.parquet",
        "QCD_0001.parquet",
        "Tbqq_0000.parquet",
        "Tbqq_0001.parquet",
    ]
    smaller = {p.name for p in bench.first_shards(plan, 500)}
    assert smaller < set(names)  # nested


def test_a_cut_recipe_starts_its_average_within_the_run(tmp_path: Path) -> None:
    long = bench.Plan(20000, 1, 30, ("bdt",), tmp_path)
    # the recipe's own schedule fits: its keys are left alone
    assert not any("ema" in o for o in long.overrides("particlenet-lite+small", 0))
    short = bench.Plan(2500, 1, 5, ("bdt",), tmp_path)
    overrides = short.overrides("particlenet-lite+small", 0)
    steps = 5 * -(-int(0.7 * 2 * 2500) // 128)  # 5 epochs of batch 128
    assert f"train.ema.start_step={steps // 5}" in overrides
    assert f"train.warmup_steps={steps // 5}" in overrides
    assert "train.epochs=5" in overrides
    assert not any("ema" in o for o in short.overrides("particlenet-lite", 0))


def test_versus_bdt_needs_the_margin_beyond_three_standard_errors() -> None:
    summary = {
        "bdt": model_summary(0.9800, 0.0003, 300.0, 5.0),
        "clear": model_summary(0.9850, 0.0003, 400.0, 5.0),  # +0.005, se ~0.00024
        "noisy": model_summary(0.9850, 0.0040, 400.0, 5.0),  # +0.005, se ~0.0023
        "small": model_summary(0.9820, 0.0001, 400.0, 5.0),  # +0.002 < 0.003
        "no_rejection_gain": model_summary(0.9850, 0.0003, 290.0, 5.0),
    }
    verdicts = bench.versus_bdt(summary)
    assert set(verdicts) == {"clear", "noisy", "small", "no_rejection_gain"}
    assert [m for m, v in verdicts.items() if v["goal_met"]] == ["clear"]
    assert verdicts["clear"]["auc"]["delta"] == pytest.approx(0.005)
    assert bench.versus_bdt({"pfn": summary["clear"]}) == {}  # no BDT, nothing to compare


def test_the_curve_takes_the_two_networks_of_highest_auc() -> None:
    summary = {
        "bdt": model_summary(0.99, 0.001, 300.0, 5.0),
        "pfn": model_summary(0.96, 0.001, 100.0, 5.0),
        "part-lite": model_summary(0.98, 0.001, 300.0, 5.0),
        "particlenet-lite": model_summary(0.97, 0.001, 200.0, 5.0),
    }
    assert bench.best_networks(summary) == ["part-lite", "particlenet-lite"]


def test_the_hybrid_is_a_contender_with_its_recipe_and_its_jet_inputs(tmp_path: Path) -> None:
    assert bench.EXPERIMENTS["particlenet-lite+hl"].exists()
    # its weight average is cut with the run as the +small recipe's is
    short = bench.Plan(2500, 1, 5, ("bdt",), tmp_path)
    steps = 5 * -(-int(0.7 * 2 * 2500) // 128)
    assert f"train.ema.start_step={steps // 5}" in short.overrides("particlenet-lite+hl", 0)
    # built with its options: the head takes the 6 jet features too (6 x 128 weights more)
    extra = bench.parameters("particlenet-lite+hl") - bench.parameters("particlenet-lite+small")
    assert extra == 6 * 128
    # ParT-lite's: the class token (64) and the 6 jet features into a dense layer of 128,
    # then the output, in place of ParT-lite's linear output (64 x 2 + 2)
    extra = bench.parameters("part-lite+hl") - bench.parameters("part-lite+small")
    assert extra == (64 + 6) * 128 + 128 + 128 * 2 + 2 - (64 * 2 + 2)


def test_independent_samples_are_generated_apart_and_scored_on_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = bench.Plan(2000, 1, 1, ("bdt",), tmp_path, robust_jets=500, test_jets=1000)
    made: list[Any] = []
    monkeypatch.setattr(bench, "generate", made.append)
    for other in (None, plan.robust, plan.independent_test):
        bench.ensure_sample(plan, other)
    main, robust, test = made
    # three samples, three seeds, three directories; only the robustness one is varied
    assert len({main.seed, robust.seed, test.seed}) == 3
    assert len({main.out, robust.out, test.out}) == 3
    assert (main.jets, robust.jets, test.jets) == (2000, 500, 1000)
    assert main.variation is None
    assert test.variation is None
    assert robust.variation == "tune_a14"
    # a run scored on either sample is a copy beside the runs, never the run itself
    run = plan.run_dir("bdt", 0)
    copies = {plan.scored_dir("bdt", 0, o) for o in (plan.robust, plan.independent_test)}
    assert len(copies) == 2
    assert run not in copies
    assert all(run not in c.parents and c.name == run.name for c in copies)


def test_more_seeds_are_pooled_only_with_a_matching_earlier_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(auc: float) -> dict[str, Any]:
        return {"auc": {"value": auc, "err": 0.001}}

    stored = {  # written by a call with --seeds 3 (before seed_list was recorded)
        "sample": {"jets_per_class": 2000, "seed": bench.SAMPLE_SEED, "shard": 500},
        "seeds": 3,
        "epochs": 4,
        "runs": {"bdt": [run(0.97)] * 3, "pfn": [run(0.96)] * 3},
        "independent_test": {"jets_per_class": 1000, "runs": {"bdt": [run(0.971)] * 3}},
    }
    (tmp_path / "top.json").write_text(json.dumps({"figures": {"full": stored}}))
    monkeypatch.setattr(bench, "RESULTS", tmp_path)

    def plan(first_seed: int, epochs: int = 4, models: tuple[str, ...] = ("bdt",)) -> Any:
        return bench.Plan(
            2000, 2, epochs, models, tmp_path, shard=500, test_jets=1000, first_seed=first_seed
        )

    earlier = bench.earlier_runs("top", "full", plan(3))
    assert earlier["seeds"] == [0, 1, 2]
    assert earlier["split"] == {"bdt": [run(0.97)] * 3}  # only this call's models
    assert earlier["independent"] == {"bdt": [run(0.971)] * 3}
    assert list(plan(3).seed_list) == [3, 4]
    with pytest.raises(SystemExit, match=r"seeds in both: \[2\]"):
        bench.earlier_runs("top", "full", plan(2))
    with pytest.raises(SystemExit, match=r"epochs 4 \(figures.full\) != 5"):
        bench.earlier_runs("top", "full", plan(3, epochs=5))
    with pytest.raises(SystemExit, match=r"models not in it: \['part-lite'\]"):
        bench.earlier_runs("top", "full", plan(3, models=("bdt", "part-lite")))
    with pytest.raises(SystemExit, match=r"no figures\.other"):
        bench.earlier_runs("top", "other", plan(3))
    stored["seed_list"] = [3, 4, 5]  # a pooled call records its seeds
    (tmp_path / "top.json").write_text(json.dumps({"figures": {"full": stored}}))
    assert bench.earlier_runs("top", "full", plan(0))["seeds"] == [3, 4, 5]

    # the jets: compared by digest once this call's samples exist
    def manifest(path: Path, sha: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        files = [{"file": f"shards/{c}.parquet", "sha256": sha + c} for c in ("QCD", "Tbqq")]
        (path / "manifest.json").write_text(json.dumps({"files": files}))

    manifest(plan(3).sample, "a")
    manifest(plan(3).sample_dir(plan(3).independent_test), "b")
    assert earlier["digests"] == {"sample": None, "independent test sample": None}
    assert bench.unchecked_jets(earlier, plan(3)) == ["sample", "independent test sample"]
    stored["sample"]["digest"] = bench.sample_digest(plan(3).sample)
    stored["independent_test"]["digest"] = bench.sample_digest(plan(3).sample)  # not its own
    (tmp_path / "top.json").write_text(json.dumps({"figures": {"full": stored}}))
    earlier = bench.earlier_runs("top", "full", plan(0))
    with pytest.raises(SystemExit, match="its independent test sample holds other jets"):
        bench.unchecked_jets(earlier, plan(0))
    manifest(plan(3).sample_dir(plan(3).independent_test), "a")  # now the same files
    assert bench.unchecked_jets(earlier, plan(0)) == []
