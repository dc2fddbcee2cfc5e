"""``heptagon trigger ad``: an anomaly run quantised to 8 bits, fine-tuned, emulated with
hls4ml, float vs fixed point at a fixed L1 rate, on the tiny event sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heptagon.apps.trigger.hls import compiler_available
from heptagon.artifacts.anomaly import TriggerAdFile
from heptagon.cli import app
from heptagon.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "heptagon" / "configs"
FAST = ["--set", "train.epochs=1", "--set", "train.batch_size=64", "--set", "train.progress=false"]


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


def _train(config: str, data: Path, out: Path, *extra: str) -> Path:
    _invoke("train", str(CONFIGS / config), "--data", str(data), "--out", str(out), *FAST, *extra)
    return out


def _check(report: TriggerAdFile, variants: set[str]) -> None:
    assert set(report.metrics.scores) == variants
    for variant in variants:
        tth = report.metrics.scores[variant]["tth"]
        assert tth.auc.value is not None
        assert 0 <= tth.eff_at_rate.signal_eff.value <= 1  # type: ignore[operator]
        # a few hundred test events cannot resolve 1 kHz of 40 MHz: the lowest reachable rate
        assert not tth.eff_at_rate.reached
        assert tth.eff_at_rate.rate_hz == pytest.approx(tth.eff_at_rate.background_eff * 40e6)


def test_autoencoder_float_vs_8_bit(event_sample: Path, tmp_path: Path) -> None:
    run = _train("ad_l1_ae.yaml", event_sample, tmp_path / "ae")
    out = tmp_path / "ad"
    text = _invoke("trigger", "ad", str(run), "--out", str(out), "--qat-epochs", "1",
                   "--no-emulation")  # fmt: skip
    assert "float tth: AUC" in text
    assert "fixed_point tth: AUC" in text
    report = TriggerAdFile.read(out / "ad.json")
    assert report.firmware == "autoencoder"
    assert report.score == "mse"
    assert report.precision == "ap_fixed<8,3,AP_RND,AP_SAT>"
    assert report.emulation is None
    _check(report, {"float", "fixed_point"})
    # the 8-bit model is another model: its scores differ from the float ones
    f, q = (report.metrics.scores[v]["tth"].auc.value for v in ("float", "fixed_point"))
    assert f != q

    # a run that is not an anomaly detector is refused before anything is scored
    info = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**info, "task": "classification"}))
    result = CliRunner().invoke(app, ["trigger", "ad", str(run), "--out", str(tmp_path / "no")])
    assert isinstance(result.exception, ConfigError)
    assert "anomaly run" in str(result.exception)
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(not compiler_available(), reason="no g++: the hls4ml emulation cannot compile")
def test_vae_encoder_emulation_is_bit_exact(event_sample: Path, tmp_path: Path) -> None:
    run = _train("ad_l1_vae.yaml", event_sample, tmp_path / "vae")
    out = tmp_path / "ad"
    _invoke("trigger", "ad", str(run), "--out", str(out), "--qat-epochs", "1")
    report = TriggerAdFile.read(out / "ad.json")
    assert report.firmware == "encoder"
    assert report.score == "kl"
    assert report.emulation is not None
    assert report.emulation.bit_exact
    n_tth = report.metrics.scores["emulated"]["tth"].n_signal.raw
    assert report.emulation.entries == report.metrics.n_background.raw + n_tth
    _check(report, {"float", "fixed_point", "emulated"})
    fixed, emulated = report.metrics.scores["fixed_point"], report.metrics.scores["emulated"]
    assert emulated["tth"].auc.value == fixed["tth"].auc.value  # the firmware is the model
    # the VAE samples its latent in QAT: seeded, a second run gives the same model
    _invoke("trigger", "ad", str(run), "--out", str(tmp_path / "again"), "--qat-epochs", "1",
            "--no-emulation")  # fmt: skip
    again = TriggerAdFile.read(tmp_path / "again" / "ad.json").metrics.scores["fixed_point"]
    assert again["tth"].auc == fixed["tth"].auc
