"""Anomaly detection as a training mode (``train.task: anomaly``): the autoencoder and the
VAE train through ``heptagon train`` on the background classes only, their losses, the
rate <-> efficiency conversion, and ``evaluate`` / ``export`` of such a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from heptagon.artifacts.metrics import AnomalyEvaluation, read_evaluation
from heptagon.cli import app
from heptagon.errors import ConfigError
from heptagon.models import build_model
from heptagon.models.autoencoder import AnomalyScore, anomaly_scores, kl_divergence
from heptagon.physics.rates import efficiency_at_rate, efficiency_of_rate, rate_of_efficiency
from heptagon.train.losses import ReconstructionLoss

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "heptagon" / "configs"
AE = str(CONFIGS / "ad_l1_ae.yaml")
VAE = str(CONFIGS / "ad_l1_vae.yaml")
FAST = ["--set", "train.batch_size=64", "--set", "train.lr=3e-3", "--set", "train.progress=false"]


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


def _history(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_kl_is_zero_for_the_prior_and_positive_otherwise() -> None:
    zero = torch.zeros(5, 3)
    assert torch.equal(kl_divergence(zero, zero), torch.zeros(5))
    shifted = kl_divergence(torch.full((1, 3), 0.5), torch.zeros(1, 3))
    assert shifted.item() == pytest.approx(3 * 0.5 * 0.25)  # 1/2 sum mu^2
    narrow = kl_divergence(torch.zeros(1, 1), torch.full((1, 1), -1.0))
    assert narrow.item() == pytest.approx(0.5 * (np.exp(-1) - 1 + 1))  # (e^lv - 1 - lv) / 2
    assert narrow.item() > 0


def test_reconstruction_loss_adds_beta_times_kl_for_a_vae() -> None:
    x = torch.tensor([[1.0, 2.0]])
    ae_out = torch.tensor([[1.0, 0.0]])  # squared errors 0 and 4: mse 2
    vae_out = torch.tensor([[1.0, 0.0, 1.0, 0.0]])  # + mu = 1, logvar = 0: KL 0.5
    weight = torch.ones(1)
    assert ReconstructionLoss(beta=0.3)(ae_out, x, weight).item() == pytest.approx(2.0)
    assert ReconstructionLoss(beta=0.3)(vae_out, x, weight).item() == pytest.approx(2.0 + 0.15)
    assert anomaly_scores(vae_out, x)["kl"].item() == pytest.approx(0.5)


def test_rate_and_efficiency_convert_at_40_mhz() -> None:
    assert efficiency_of_rate(1e3) == pytest.approx(2.5e-5)  # 1 kHz of 40 MHz
    assert rate_of_efficiency(2.5e-5) == pytest.approx(1e3)
    assert rate_of_efficiency(1e-3, reference_hz=1e6) == pytest.approx(1e3)
    with pytest.raises(ValueError, match="not in"):
        efficiency_of_rate(0.0)


def test_efficiency_at_rate_reached_and_unreachable() -> None:
    rng = np.random.default_rng(0)
    bkg = rng.uniform(0, 1, 200_000)
    sig = np.linspace(0, 1, 1001)[1:]  # signal uniform too: eps_S = eps_B at any cut
    scores, labels = np.r_[bkg, sig], np.r_[np.zeros(len(bkg)), np.ones(len(sig))]
    wp = efficiency_at_rate(scores, labels, rate_hz=4e3)  # eps_B = 1e-4: 20 events
    assert wp.reached
    assert wp.background_eff <= 1e-4
    assert wp.rate_hz <= 4e3
    assert wp.background_eff == pytest.approx(1e-4, abs=1e-5)
    assert wp.signal_eff == pytest.approx(1e-4, abs=1.5e-3)  # at most one signal entry
    few = efficiency_at_rate(scores[-1100:], labels[-1100:], rate_hz=1e3)  # 100 background
    assert not few.reached
    assert few.background_eff == pytest.approx(1 / 100)  # the top background event alone
    assert few.rate_hz == pytest.approx(40e6 / 100)


def test_autoencoder_in_a_classification_is_a_config_error(
    event_sample: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["train", AE, "--data", str(event_sample), "--out", str(tmp_path / "run"),
         "--set", "train.task=classification", "--set", "train.background=[]"],
    )  # fmt: skip
    assert isinstance(result.exception, ConfigError)  # the command: one line, exit 2
    assert result.exception.key == "train.task"
    assert "anomaly" in str(result.exception)
    assert not (tmp_path / "run").exists()


def test_background_must_be_classes_of_the_labels(event_sample: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train", AE, "--data", str(event_sample), "--out", str(tmp_path / "run"),
         "--set", "train.background=[qcd]"],
    )  # fmt: skip
    assert isinstance(result.exception, ConfigError)
    assert result.exception.key == "train.background"


def test_autoencoder_trains_on_background_and_its_loss_decreases(
    event_sample: Path, tmp_path: Path
) -> None:
    run = tmp_path / "ae"
    _invoke("train", AE, "--data", str(event_sample), "--out", str(run),
            "--set", "train.epochs=3", *FAST)  # fmt: skip
    history = _history(run)
    assert history[-1]["train_loss"] < 0.95 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["val_accuracy"] is None
    assert history[-1]["val_auc"] is not None
    assert json.loads((run / "model.json").read_text())["task"] == "anomaly"


def test_signal_entries_do_not_train_the_autoencoder(event_sample: Path, tmp_path: Path) -> None:
    """Only the background's weights reach the loss: training with the signal class
    called background too gives other weights."""
    runs = {}
    for name, background in (("bkg", "[ttbar,dy]"), ("all", "[tth,ttbar,dy]")):
        runs[name] = tmp_path / name
        _invoke("train", AE, "--data", str(event_sample), "--out", str(runs[name]), "--set",
                "train.epochs=1", "--set", f"train.background={background}", *FAST)  # fmt: skip
    a, b = (
        torch.load(r / "checkpoints/best.pt", weights_only=True)["model"] for r in runs.values()
    )
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_evaluate_writes_the_anomaly_metrics_and_export_the_score(
    event_sample: Path, tmp_path: Path
) -> None:
    run = tmp_path / "vae"
    _invoke("train", VAE, "--data", str(event_sample), "--out", str(run),
            "--set", "train.epochs=2", *FAST)  # fmt: skip
    _invoke("evaluate", str(run), "--rate-khz", "1")
    metrics = read_evaluation(run / "eval" / "metrics.json")
    assert isinstance(metrics, AnomalyEvaluation)
    assert metrics.score == "kl"
    assert metrics.background == ["ttbar", "dy"]
    assert set(metrics.scores) == {"mse", "kl"}
    assert set(metrics.scores["kl"]) == {"tth"}
    tth = metrics.scores["kl"]["tth"]
    assert tth.auc.value is not None
    assert 0 <= tth.auc.value <= 1
    at = tth.eff_at_rate
    assert at.requested_rate_hz == 1e3
    # ~100 test background events cannot resolve 1 kHz of 40 MHz: the lowest reachable rate
    assert not at.reached
    assert at.rate_hz == pytest.approx(at.background_eff * 40e6)
    assert at.rate_hz >= 40e6 / metrics.n_background.raw
    assert (run / "eval" / "predictions_test.parquet").exists()
    assert "anomaly scores" in (run / "eval" / "report.md").read_text()
    dy = sorted((event_sample / "shards").glob("dy_*.parquet"))[0]
    _invoke("evaluate", str(run), "--data", str(dy))
    only_dy = read_evaluation(run / "eval" / "metrics.json")
    assert isinstance(only_dy, AnomalyEvaluation)
    assert only_dy.missing_classes == ["tth"]
    assert only_dy.auc.value is None

    _invoke("compare", str(run), "--out", str(tmp_path / "cmp"))  # re-evaluates the test split
    auc = read_evaluation(run / "eval" / "metrics.json").auc.value
    assert f"{auc:.4g}" in (tmp_path / "cmp" / "compare.md").read_text()

    _invoke("export", str(run))
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(7, 26)).astype(np.float32)
    (onnx_score,) = session.run(None, {"jet_features": x})
    model = build_model("vae", {"jet_features": 26}, 3, latent=3)
    state = torch.load(run / "checkpoints/best.pt", weights_only=True)["model"]
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        ref = anomaly_scores(model(torch.from_numpy(x)), torch.from_numpy(x))["kl"]
        wrapped = AnomalyScore(model)(torch.from_numpy(x))  # type: ignore[arg-type]
    np.testing.assert_allclose(onnx_score[:, 0], ref.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(wrapped[:, 0].numpy(), ref.numpy(), rtol=1e-6)
