"""Pre-trained weights (``--load-model-weights``, ``--strict/--no-strict``, ``--freeze``)
and docs/fine-tuning.md run top to bottom on tiny samples."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from doc_pages import code_blocks, one_epoch_configs, run_command
from train_helpers import PARTICLE_DATA, TINY_PARTICLENET, write_experiment

from heptagon.errors import ConfigError, DataError
from heptagon.train import train
from heptagon.train.experiment import InitSpec, ModelFlags
from heptagon.train.finetune import initialise, load_weights, pretrained_state

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "fine-tuning.md"
#: a ParT-lite small enough for a test
TINY_PART = (
    "  options: {embed_dims: [16, 16], pair_embed_dims: [8, 8], num_heads: 2, "
    "num_layers: 1, num_cls_layers: 1}\n"
)


def _experiment(path: Path, labels: list[str] | dict[str, str], epochs: int = 1) -> Path:
    return write_experiment(
        path,
        {
            "data": {**PARTICLE_DATA, "labels": labels},
            "model": TINY_PARTICLENET,
            "train": {"epochs": epochs, "batch_size": 64, "lr": 5e-3, "progress": False},
        },
    )


#: three classes from the two-class sample: the pre-training task has another head
THREE_CLASSES = {
    "QCD": "label_QCD == 1",
    "top_soft": "(label_Tbqq == 1) & (jet_pt < 600)",
    "top_hard": "(label_Tbqq == 1) & (jet_pt >= 600)",
}


@pytest.fixture
def pretrained(top_qcd_sample: Path, tmp_path: Path) -> Path:
    """A tiny ParticleNet trained for one epoch on three classes."""
    train(_experiment(tmp_path / "pre.yaml", THREE_CLASSES), top_qcd_sample, tmp_path / "pre")
    return tmp_path / "pre"


def _best(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]


def test_a_new_head_is_skipped_and_frozen_parameters_keep_their_values(
    pretrained: Path, top_qcd_sample: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    experiment = _experiment(tmp_path / "ft.yaml", ["label_QCD", "label_Tbqq"], epochs=2)
    flags = ModelFlags(weights=pretrained, strict=False, freeze=("edge_convs.*",))
    with caplog.at_level("INFO", logger="heptagon.train"):
        train(experiment, top_qcd_sample, tmp_path / "ft", flags=flags)
    before, after = _best(pretrained), _best(tmp_path / "ft")
    frozen = [k for k in after if k.startswith("edge_convs.") and k.endswith(".weight")]
    assert frozen
    for key in frozen:
        assert torch.equal(after[key], before[key]), key
    head = [k for k in after if before[k].shape != after[k].shape]
    assert head
    assert all(k.startswith("fc.") for k in head)
    trained = [k for k in after if k.startswith("fc.") and k not in head and "weight" in k]
    assert trained
    assert not all(torch.equal(after[k], before[k]) for k in trained)
    line = next(r.message for r in caplog.records if r.message.startswith("initialised"))
    assert f"{len(head)} skipped (shape)" in line
    assert "0 missing, 0 unexpected" in line


def test_strict_loading_refuses_another_head(pretrained: Path, top_qcd_sample: Path,
                                             tmp_path: Path) -> None:  # fmt: skip
    experiment = _experiment(tmp_path / "ft.yaml", ["label_QCD", "label_Tbqq"])
    with pytest.raises(ConfigError, match=r"fc\..*--no-strict") as err:
        train(experiment, top_qcd_sample, tmp_path / "ft", flags=ModelFlags(weights=pretrained))
    assert err.value.key == "init.strict"
    assert not (tmp_path / "ft").exists()  # checked before anything is written


def test_a_bare_state_dict_loads_and_a_resumed_run_refreezes(
    pretrained: Path, top_qcd_sample: Path, tmp_path: Path
) -> None:
    """weaver-core saves bare state dicts; freezing is not in a checkpoint, so a resumed
    run must apply it again."""
    bare = tmp_path / "weaver_state.pt"
    torch.save(_best(pretrained), bare)
    source, state = pretrained_state(bare)
    assert source == bare
    assert set(state) == set(_best(pretrained))
    model = torch.nn.Linear(2, 2)
    report = initialise(model, InitSpec(weights=str(bare), freeze=["bias"]), resumed=True)
    assert report.loaded == ()
    assert report.frozen_tensors == 1
    assert not model.bias.requires_grad
    assert model.weight.requires_grad


def test_load_weights_counts_loaded_skipped_missing_and_unexpected() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = {
        "0.weight": torch.ones(4, 3),
        "0.bias": torch.ones(4),
        "1.weight": torch.ones(5, 4),  # another head
        "extra": torch.zeros(1),
    }
    loaded, skipped, missing, unexpected = load_weights(model, state, strict=False)
    assert loaded == ("0.weight", "0.bias")
    assert skipped == ("1.weight",)
    assert missing == ("1.bias",)
    assert unexpected == ("extra",)
    assert torch.equal(model[0].weight, torch.ones(4, 3))
    assert not torch.equal(model[1].weight, torch.ones(4, 2))
    with pytest.raises(ConfigError) as err:
        load_weights(model, {"other": torch.zeros(1)}, strict=False)
    assert err.value.key == "init.weights"


def test_bad_weights_and_patterns_are_user_errors(tmp_path: Path) -> None:
    not_weights = tmp_path / "x.pt"
    torch.save({"model": {"a": 1}}, not_weights)
    with pytest.raises(DataError, match="no model weights"):
        pretrained_state(not_weights)
    with pytest.raises(DataError, match="neither a checkpoint nor a run dir"):
        pretrained_state(tmp_path)
    good = tmp_path / "good.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), good)
    with pytest.raises(ConfigError, match=r"'encoder\.\*' matches no parameter") as err:
        initialise(torch.nn.Linear(2, 2), InitSpec(weights=str(good), freeze=["encoder.*"]))
    assert err.value.key == "init.freeze"


def test_strict_or_freeze_without_weights_is_a_config_error(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path / "e.yaml", ["label_QCD", "label_Tbqq"])
    with pytest.raises(ConfigError) as err:
        train(experiment, tmp_path, tmp_path / "run", flags=ModelFlags(freeze=("fc.*",)))
    assert err.value.key == "--load-model-weights"


# ------------------------------------------------------------------ docs/fine-tuning.md


def _tiny_configs(dest: Path) -> None:
    one_epoch_configs(dest, "top_part_lite.yaml")
    path = dest / "top_part_lite.yaml"
    text = path.read_text().replace("warmup_steps: 200", "warmup_steps: 0")
    path.write_text(text.replace("  name: part-lite\n", "  name: part-lite\n" + TINY_PART))
    mlp = dest / "top_mlp.yaml"
    mlp.write_text(re.sub(r"epochs: \d+", "epochs: 2", mlp.read_text()))
    data = dest / "data" / "top_kinematic.yaml"
    data.write_text(data.read_text().replace("length: 100", "length: 30"))


def test_the_fine_tuning_guide_runs(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tiny_configs(tmp_path / "configs")
    shutil.copytree(top_qcd_sample, tmp_path / "top")
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks(DOC.read_text(), "bash", "python")
    assert [k for k, _ in blocks].count("bash") >= 3
    ran = []
    for kind, code in blocks:
        if kind == "python":
            Path("my_net.py").write_text(code)
            continue
        for line in [line for line in code.splitlines() if line.strip()]:
            argv = shlex.split(line)
            assert argv[0] == "heptagon", argv  # also the lines copied, not run, below
            args = argv[1:]
            out = args[args.index("--out") + 1] if "--out" in args else None
            if args[:2] == ["generate", "top-vs-qcd"] and out != "top":
                # the top-up's conditions: copies of the cached sample (a pile-up sample
                # of a useful size takes minutes; tests/generate covers --pileup)
                shutil.copytree(top_qcd_sample, out)
                continue
            if args[:2] == ["generate", "top-vs-qcd"]:  # the cached sample is 'top'
                args = [*args[:2], "--jets", "3", "--seed", "2", "--no-mpi", "--out", "gen"]
            elif args[:2] == ["generate", "jetclass-like"]:
                args = [*args[:2], "--jets", "8", "--seed", "1", "--no-mpi", "--out",
                        "jetclass"]  # fmt: skip
            run_command(line, args)
            ran.append(args[0])
    assert ran.count("train") == 9
    for run, ewc, replay in (("finetune", None, None), ("ewc", 10000, None), ("replay", None, 300)):
        parent = json.loads(Path(f"runs/{run}/model.json").read_text())["parent"]
        assert (parent["run"], parent["ewc"], parent["replay"]) == (
            str(Path("runs/old").resolve()), ewc, replay,
        )  # fmt: skip
        samples = json.loads(Path(f"runs/{run}/eval/metrics.json").read_text())["samples"]
        assert set(samples) == {"old-test", "new-test"}
    assert Path("runs/compare/compare.md").exists()
    assert (Path("runs/pfn/bundle") / "model.onnx").exists()
    head_only = torch.load("runs/head-only/checkpoints/best.pt", weights_only=True)["model"]
    pre = torch.load("runs/pretrained/checkpoints/best.pt", weights_only=True)["model"]
    assert torch.equal(head_only["blocks.0.fc1.weight"], pre["blocks.0.fc1.weight"])
