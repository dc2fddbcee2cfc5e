"""Level-1 anomaly detection on generated events: a dense autoencoder and a VAE over the L1
objects of an event, trained on ttbar + Drell-Yan only, scored on ttH (never seen);
float vs 8-bit (QAT, hls4ml-emulated).

    python benchmarks/anomaly.py [--events 4000] [--epochs 10] [--qat-epochs 5]
                                 [--rates-khz 1 1000] [--out /tmp/anomaly-bench]
                                 [--name anomaly]

What runs, all in this process, through heptagon's own stages:

- one ``tth-analysis`` sample (``heptagon generate-events``: ttH, ttbar, Drell-Yan at
  14 TeV, MPI on, ``--events`` per process, 2 jobs), generated once into
  ``OUT/sample-<events>`` (resumable);
- per model, the shipped experiments ``configs/ad_l1_ae.yaml`` (score: reconstruction MSE)
  and ``configs/ad_l1_vae.yaml`` (score: KL of the posterior to the prior), ``--epochs``
  epochs: ``heptagon.train.train``, ``heptagon.evaluate.evaluate`` on the test split
  (AUC of ttH vs the background, signal efficiency at each of ``--rates-khz`` out of
  40 MHz), and ``heptagon trigger ad`` at each rate: 8-bit QAT (``ap_fixed<8,3>``,
  ``--qat-epochs``), hls4ml C++ emulation (bit-accuracy against the torch fixed-point
  model), float vs fixed point vs emulated 8-bit.

The test split holds ~15% of the background, i.e. ~1000 events: it cannot resolve 1 kHz
of 40 MHz (eps_B = 2.5e-5); the signal efficiency is then quoted at the lowest rate the
sample reaches (its highest-scoring background event alone, so a handful of signal events
at most), recorded beside it. The second rate, 1 MHz (eps_B = 2.5%), is far above what an
L1 seed may take but resolved by the sample (~25 background events pass): the float vs
8-bit comparison with some statistics.
Results go to ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from _common import write_results

from heptagon.apps.trigger.ad import anomaly_trigger
from heptagon.artifacts.metrics import AnomalyMetrics, AnomalySignal
from heptagon.evaluate.run import evaluate
from heptagon.generate.events import EventOptions, generate_events
from heptagon.train.run import train

CONFIGS = Path(__file__).resolve().parent.parent / "src" / "heptagon" / "configs"
MODELS = {"autoencoder": "ad_l1_ae.yaml", "vae": "ad_l1_vae.yaml"}


def _signal(s: AnomalySignal) -> dict[str, Any]:
    at = s.eff_at_rate
    return {
        "auc": s.auc.value,
        "auc_err": s.auc.err,
        "signal_eff": at.signal_eff.value,
        "signal_eff_err": at.signal_eff.err,
        "rate_khz": at.rate_hz / 1e3,
        "requested_rate_khz": at.requested_rate_hz / 1e3,
        "rate_reached": at.reached,
    }


def _figures(m: AnomalyMetrics) -> dict[str, Any]:
    return {name: _signal(by_class["tth"]) for name, by_class in m.scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000, help="events per process")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--qat-epochs", type=int, default=5)
    parser.add_argument("--rates-khz", type=float, nargs="+", default=[1.0, 1000.0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/anomaly-bench"))
    parser.add_argument("--name", default="anomaly")
    args = parser.parse_args()

    sample = args.out / f"sample-{args.events}"
    t0 = time.perf_counter()
    generate_events(
        EventOptions(sample="tth-analysis", events=args.events, seed=1, out=sample, jobs=2),
        show_progress=False,
    )
    figures: dict[str, Any] = {
        "events_per_process": args.events,
        "epochs": args.epochs,
        "qat_epochs": args.qat_epochs,
        "background": ["ttbar", "dy"],
        "signal": "tth (never seen in training)",
        "reference_rate_mhz": 40.0,
        "generate_s": round(time.perf_counter() - t0, 1),
        "models": {},
    }
    for name, config in MODELS.items():
        run = args.out / f"{name}-{args.events}-{args.epochs}"
        if not (run / "checkpoints" / "best.pt").exists():
            train(CONFIGS / config, sample, run,
                  [f"train.epochs={args.epochs}", "train.progress=false"])  # fmt: skip
        at_rates = {}
        for rate in args.rates_khz:
            m = evaluate(run, rate_hz=rate * 1e3).metrics
            assert isinstance(m, AnomalyMetrics)
            ad = anomaly_trigger(
                run, run / f"ad-{rate:g}", qat_epochs=args.qat_epochs, rate_hz=rate * 1e3
            )
            at_rates[f"{rate:g} kHz"] = {
                "evaluate": _figures(m),
                "trigger": {
                    "emulation": None if ad.emulation is None else ad.emulation.model_dump(),
                    **_figures(ad.metrics),
                },
            }
        figures["models"][name] = {
            "score": m.score,
            "test_background_events": m.n_background.raw,
            "test_signal_events": m.scores[m.score]["tth"].n_signal.raw,
            "precision": ad.precision,
            "firmware": ad.firmware,
            "rates": at_rates,
        }
        print(name, figures["models"][name])
    print(write_results(args.name, figures))


if __name__ == "__main__":
    main()
