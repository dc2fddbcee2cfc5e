"""A user's network file in weaver-core's convention (``--network-config``): trained,
evaluated, exported, published and predicted like a registered model; re-loading a run
needs the file named again (heptagon never imports the run's copy by itself)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from train_helpers import PARTICLE_DATA, write_experiment
from typer.testing import CliRunner

from heptagon.cli import app
from heptagon.data.config import load_config
from heptagon.errors import ConfigError
from heptagon.train.network import UserLoss, build_network, weaver_data_config

NETWORKS = Path(__file__).parent / "networks"
PFN = NETWORKS / "weaver_pfn.py"


def _experiment(tmp_path: Path, epochs: int = 2) -> Path:
    return write_experiment(
        tmp_path / "exp.yaml",
        {
            "data": PARTICLE_DATA,
            "model": {"name": "mlp"},  # replaced by --network-config
            "train": {"epochs": epochs, "batch_size": 64, "lr": 5e-3, "progress": False},
        },
    )


def _invoke(*args: str | Path) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


def test_the_weaver_view_of_a_data_config() -> None:
    view = weaver_data_config(load_config(PARTICLE_DATA))
    assert view.input_names == ("pf_points", "pf_features", "pf_mask")
    assert view.input_shapes == {
        "pf_points": (-1, 2, 40),
        "pf_features": (-1, 5, 40),
        "pf_mask": (-1, 1, 40),
    }
    assert view.input_dicts["pf_features"][2] == "part_pt_log"
    assert view.label_value == ["label_QCD", "label_Tbqq"]
    assert view.label_names == ("_label_",)
    assert view.num_classes == 2


def test_a_network_file_trains_evaluates_exports_publishes_and_predicts(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = tmp_path / "my_net.py"
    shutil.copy(PFN, net)
    monkeypatch.chdir(tmp_path)
    _invoke("train", _experiment(tmp_path), "--data", top_qcd_sample, "--out", "run",
            "--network-config", "my_net.py", "--set", "model.options.phi_sizes=[8,8]")  # fmt: skip
    info = json.loads(Path("run/model.json").read_text())
    assert info["name"] == "my_net"
    assert info["options"] == {"phi_sizes": [8, 8]}
    assert info["input_names"] == ["pf_points", "pf_features", "pf_mask"]
    assert info["network"]["source"] == str(net)
    assert Path("run/network.py").read_bytes() == net.read_bytes()
    history = [json.loads(line) for line in Path("run/history.jsonl").read_text().splitlines()]
    assert history[-1]["val_auc"] > 0.7  # it learned: top vs QCD from the constituents

    # the run's code is not imported unless the user names the file again
    result = CliRunner().invoke(app, ["evaluate", "run"])
    assert isinstance(result.exception, ConfigError)  # the console script: one line, exit 2
    assert result.exception.key == "--network-config"
    _invoke("evaluate", "run", "--network-config", "my_net.py")
    metrics = json.loads(Path("run/eval/metrics.json").read_text())
    assert metrics["auc"]["value"] > 0.7
    _invoke("export", "run", "--network-config", "run/network.py")  # the copy, by choice
    _invoke("publish", "run", "--network-config", "my_net.py")
    assert (Path("run/bundle") / "model.onnx").exists()
    shard = sorted((top_qcd_sample / "shards").glob("Tbqq_*.parquet"))[0]
    _invoke("predict", "run/bundle", shard, "--out", "pred")
    scores = pd.read_parquet(Path("pred") / f"{shard.stem}.parquet")
    assert scores["score_Tbqq"].between(0, 1).all()
    assert scores["score_Tbqq"].mean() > 0.5  # top jets score as top


def test_a_changed_network_file_is_refused(
    top_qcd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = tmp_path / "my_net.py"
    shutil.copy(PFN, net)
    monkeypatch.chdir(tmp_path)
    _invoke("train", _experiment(tmp_path, epochs=1), "--data", top_qcd_sample, "--out", "run",
            "--network-config", net)  # fmt: skip
    net.write_text(net.read_text() + "\n# edited\n")
    result = CliRunner().invoke(app, ["export", "run", "--network-config", str(net)])
    assert isinstance(result.exception, ConfigError)
    assert not Path("run/model.onnx").exists()
    result = CliRunner().invoke(
        app, ["train", str(tmp_path / "exp.yaml"), "--data", str(top_qcd_sample), "--out",
              "run", "--network-config", str(net), "--resume"],
    )  # fmt: skip
    assert isinstance(result.exception, ConfigError)
    assert "not the network file the run started with" in str(result.exception)


def test_weavers_own_particlenet_trains(top_qcd_sample: Path, tmp_path: Path) -> None:
    pytest.importorskip("weaver", reason="weaver-core is the 'bench' extra")
    net = NETWORKS / "weaver_particlenet.py"
    _invoke("train", _experiment(tmp_path, epochs=1), "--data", top_qcd_sample,
            "--out", tmp_path / "run", "--network-config", net)  # fmt: skip
    state = torch.load(tmp_path / "run/checkpoints/best.pt", weights_only=True)["model"]
    assert any(k.startswith("mod.edge_convs.0.") for k in state)  # weaver's module names


@pytest.mark.parametrize(
    ("source", "key", "words"),
    [
        ("x = 1\n", "model.network", "defines no get_model"),
        ("def get_model(data_config):\n    return 1\n", "model.network", "must return"),
        ("def get_model(data_config):\n    raise ValueError('bad size')\n", "model.network",
         "ValueError: bad size"),
        ("import no_such_module_xyz\n", "model.network", "fails to import"),
        ("import torch\ndef get_model(data_config):\n    return torch.nn.Linear(1, 1), "
         "{'input_names': ['jet_features']}\n", "model.network", "jet_features"),
    ],
)  # fmt: skip
def test_a_broken_network_file_is_one_config_error(
    tmp_path: Path, source: str, key: str, words: str
) -> None:
    net = tmp_path / "net.py"
    net.write_text(source)
    with pytest.raises(ConfigError, match=words) as err:
        build_network(net, load_config(PARTICLE_DATA), {})
    assert err.value.key == key


def test_an_option_the_file_does_not_take_names_its_key(tmp_path: Path) -> None:
    net = tmp_path / "net.py"
    net.write_text("def get_model(data_config, width=8):\n    raise AssertionError\n")
    with pytest.raises(ConfigError) as err:
        build_network(net, load_config(PARTICLE_DATA), {"no_such_option": 1})
    assert err.value.key == "model.options.no_such_option"
    # a get_model with **kwargs passes them on: the error is then the file's own
    with pytest.raises(ConfigError, match="unexpected keyword argument 'no_such_option'"):
        build_network(PFN, load_config(PARTICLE_DATA), {"no_such_option": 1})


def test_a_user_loss_weights_per_entry_losses_and_keeps_a_scalar() -> None:
    output = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([0, 0, 1])
    weight = torch.tensor([1.0, 0.0, 3.0])
    per_entry = torch.nn.functional.cross_entropy(output, target, reduction="none")
    weighted = UserLoss(torch.nn.CrossEntropyLoss(reduction="none"))(output, target, weight)
    assert weighted == pytest.approx(float((per_entry * weight).sum() / weight.sum()))
    scalar = UserLoss(torch.nn.CrossEntropyLoss())(output, target, weight)
    assert scalar == pytest.approx(float(per_entry.mean()))


def test_only_the_network_module_imports_code_from_a_path() -> None:
    """The one place heptagon runs code from a file (docs/security.md's trust table)."""
    src = Path(__file__).resolve().parents[2] / "src" / "heptagon"
    importers = sorted(
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if any(w in p.read_text() for w in ("spec_from_file_location", "exec_module", "runpy"))
    )
    assert importers == ["train/network.py"]
