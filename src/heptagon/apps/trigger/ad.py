"""Level-1 anomaly detection (``heptagon trigger ad``): an anomaly run of ``heptagon train``
(``train.task: anomaly``, an ``autoencoder`` or ``vae`` over the L1 objects of an event,
docs/anomaly.md) made into trigger firmware, as CMS's CICADA / AXOL1TL are.

1. the run's model is quantised (:func:`~heptagon.apps.trigger.compression.quantize_model`):
   weights, biases and results of every dense layer ``ap_fixed<bits, integer_bits>``, the
   last firmware layer's result and the input ``ap_fixed<16,6>``; then fine-tuned
   quantisation-aware on the background entries of the run's training split (its own
   reconstruction loss, ``qat_epochs``);
2. the firmware network is the whole autoencoder (its score, ``mse``, compares the
   reconstruction with the rounded input) or, for a VAE, its encoder alone (the ``kl``
   score from ``mu`` and ``logvar``: AXOL1TL's latent-space score, no decoder on chip);
3. hls4ml converts it and its C++ emulation (bit-accurate, compiled with g++) runs on the
   scored entries; the score's few operations after the network are computed in float
   from the emulated outputs;
4. float, fixed-point (torch) and emulated scores are each quoted as AUC per held-out
   class and signal efficiency at a fixed background rate (``rate = eps_B x 40 MHz``),
   written to ``DIR/ad.json`` (:class:`~heptagon.artifacts.anomaly.TriggerAdFile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from heptagon.apps.trigger.compression import (
    FixedPoint,
    LayerPrecision,
    prunable_layers,
    quantize_model,
)
from heptagon.apps.trigger.hls import compiler_available, convert, emulate
from heptagon.artifacts.anomaly import AdEmulation, TriggerAdFile
from heptagon.data.io import expand_files
from heptagon.data.loader import JetDataset
from heptagon.errors import ConfigError, DataError
from heptagon.evaluate.anomaly import DEFAULT_RATE_HZ, AnomalyScores, anomaly_metrics
from heptagon.io import make_dir
from heptagon.logs import get_logger
from heptagon.models.autoencoder import (
    ReconstructionModel,
    VariationalAutoEncoder,
    anomaly_scores,
    kl_divergence,
)
from heptagon.train.losses import ReconstructionLoss, ReconstructionSpec
from heptagon.train.rundir import LoadedRun, load_run
from heptagon.train.seeding import seed_everything
from heptagon.train.tasks import TensorTask, fit_in_memory

__all__ = ["AD_FILE", "IO_TYPE", "anomaly_trigger"]

AD_FILE = "ad.json"
#: the input's and the last firmware layer's result type (as the trigger benchmark's)
IO_TYPE = FixedPoint(16, 6)
_log = get_logger("trigger")


@dataclass(frozen=True)
class _Rows:
    x: Tensor
    labels: NDArray[np.int64]
    weights: NDArray[np.float64]


def _rows(
    loaded: LoadedRun, files: Sequence[str | Path], split: Literal["train", "test"] | None
) -> _Rows:
    """The model's input rows of ``files`` (the run's ``split`` of them, or all)."""
    cfg = loaded.config
    data = JetDataset(
        expand_files(list(files)), cfg.data, loaded.preprocess, split=split,
        split_fractions=cfg.split.fractions, batch_size=4096, shuffle=False, seed=cfg.train.seed,
    )  # fmt: skip
    xs, labels, weights = [], [], []
    for batch in data:
        assert batch.label is not None  # the run's data config has labels
        xs.append(batch.tensors()[loaded.input_names[0]])
        labels.append(batch.label.numpy().astype(np.int64))
        weights.append(batch.weight.numpy().astype(np.float64))
    if not xs:
        raise DataError(f"no entries in the {split or 'given'} sample", files[0])
    return _Rows(torch.cat(xs), np.concatenate(labels), np.concatenate(weights))


def _firmware(model: ReconstructionModel) -> nn.Sequential:
    """The network that runs on chip: the whole autoencoder, or a VAE's encoder."""
    if isinstance(model, VariationalAutoEncoder):
        return model.encoder
    return nn.Sequential(*model.encoder, *model.decoder)


def _score(model: ReconstructionModel, out: NDArray[np.floating], x: Tensor) -> NDArray[np.float64]:
    """The anomaly score from the firmware network's output ``out`` on inputs ``x``."""
    o = torch.from_numpy(np.asarray(out, dtype=np.float32))
    if isinstance(model, VariationalAutoEncoder):
        mu, logvar = o[:, : model.latent], o[:, model.latent :]
        return kl_divergence(mu, logvar).double().numpy()
    return (o - x).square().mean(dim=1).double().numpy()


def anomaly_trigger(
    run_dir: str | Path,
    out: str | Path,
    *,
    bits: int = 8,
    integer_bits: int = 3,
    qat_epochs: int = 5,
    qat_lr: float = 1e-3,
    rate_hz: float = DEFAULT_RATE_HZ,
    data: Sequence[str | Path] = (),
    emulation: bool = True,
) -> TriggerAdFile:
    """Quantise, fine-tune, emulate and score the anomaly run ``run_dir`` (see the module
    docstring); scored on the run's test split, or on ``data`` files whole. ``emulation``
    False (or no g++) skips hls4ml. Writes and returns ``out/ad.json``.

    Raises :class:`ConfigError` for a run that is not an anomaly detector, a VAE whose
    score is not ``kl`` or a bad type, :class:`DataError` for unreadable data."""
    loaded = load_run(run_dir)
    model = _anomaly_model(loaded)
    cfg = loaded.config
    out = Path(out)
    make_dir(out)
    test_rows = _rows(loaded, data, None) if data else _rows(loaded, cfg.files, "test")
    names = list(loaded.class_names)
    q = _quantised(model, bits, integer_bits)
    if qat_epochs > 0:
        _qat(q, loaded, _rows(loaded, cfg.files, "train"), qat_epochs, qat_lr)
    q.eval()
    model.eval()
    x = test_rows.x
    x_q = IO_TYPE.quantize(x).detach()  # what the firmware holds
    firmware = _firmware(q)
    with torch.no_grad():
        float_score = anomaly_scores(model(x), x)[model.score].double().numpy()
        fixed_out = firmware(x).numpy()
    scores = {"float": float_score, "fixed_point": _score(model, fixed_out, x_q)}
    emulated = None
    if emulation and compiler_available():
        emu_out, emulated = _emulate(firmware, x, fixed_out, out)
        scores["emulated"] = _score(model, emu_out, x_q)
    elif emulation:
        _log.info("no g++ on the PATH: the hls4ml emulation is skipped")
    sample = "test" if not data else ", ".join(str(d) for d in data)
    pred = AnomalyScores(sample, scores, test_rows.labels, test_rows.weights)
    headline = "emulated" if "emulated" in scores else "fixed_point"
    metrics = anomaly_metrics(
        pred, names, cfg.train.background, headline, rate_hz=rate_hz, seed=cfg.train.seed
    )
    report = TriggerAdFile(
        run=str(loaded.root), model=loaded.info.name, score=model.score,
        firmware="encoder" if isinstance(model, VariationalAutoEncoder) else "autoencoder",
        precision=FixedPoint(bits, integer_bits).hls(), last_result_precision=IO_TYPE.hls(),
        input_precision=IO_TYPE.hls(), qat_epochs=qat_epochs, sample=sample, metrics=metrics,
        emulation=emulated,
    )  # fmt: skip
    report.write(out / AD_FILE)
    return report


def _anomaly_model(loaded: LoadedRun) -> ReconstructionModel:
    """The run's model, checked to be an anomaly detector whose score its firmware gives."""
    model = loaded.model
    if not isinstance(model, ReconstructionModel) or loaded.info.task != "anomaly":
        raise ConfigError(f"{loaded.root} is not an anomaly run (train.task: anomaly)", "run")
    if isinstance(model, VariationalAutoEncoder) and model.score != "kl":
        raise ConfigError(
            "a VAE's L1 firmware is its encoder: train it with model.options.score: kl", "run"
        )
    return model


def _quantised(model: ReconstructionModel, bits: int, integer_bits: int) -> ReconstructionModel:
    """``model`` in ``ap_fixed<bits, integer_bits>``, with the wide result type for the
    network's outputs: the reconstruction and, for a VAE, the encoder's (mu, logvar), the
    firmware's output."""
    weight_type = FixedPoint(bits, integer_bits)
    layers = [name for name, _ in prunable_layers(model)]
    outputs = {layers[-1]}
    if isinstance(model, VariationalAutoEncoder):
        outputs.add(f"encoder.{len(model.encoder) - 1}")
    uniform = LayerPrecision.uniform(bits, integer_bits)
    wide = LayerPrecision(weight_type, weight_type, IO_TYPE)
    q = quantize_model(model, uniform, input_type=IO_TYPE, per_layer=dict.fromkeys(outputs, wide))
    assert isinstance(q, ReconstructionModel)
    return q


def _qat(q: ReconstructionModel, loaded: LoadedRun, rows: _Rows, epochs: int, lr: float) -> None:
    """Quantisation-aware fine-tuning of ``q`` on the background entries of ``rows``."""
    cfg = loaded.config
    names = list(loaded.class_names)
    background = [names.index(c) for c in cfg.train.background]
    spec = cfg.train.loss
    loss = ReconstructionLoss(spec.beta if isinstance(spec, ReconstructionSpec) else 1.0)
    x_bkg = rows.x[torch.from_numpy(np.isin(rows.labels, background))]
    task = TensorTask(
        [x_bkg], x_bkg, lambda o, t: loss.per_entry(o, t).mean(),
        batch_size=cfg.train.batch_size, seed=cfg.train.seed,
    )  # fmt: skip
    seed_everything(cfg.train.seed)  # the VAE samples its latent: the same QAT each time
    losses = fit_in_memory(q, task, epochs=epochs, lr=lr)
    _log.info("QAT: %d epochs, loss %.4f -> %.4f", epochs, losses[0], losses[-1])


def _emulate(
    firmware: nn.Module, x: Tensor, fixed_out: NDArray[np.floating[Any]], out: Path
) -> tuple[NDArray[np.floating[Any]], AdEmulation]:
    """hls4ml's bit-accurate emulation of ``firmware`` on ``x``, and how far it is from the
    torch fixed-point outputs ``fixed_out``."""
    hls_model = convert(firmware, (x.shape[1],), out / "hls")
    emu_out = emulate(hls_model, x.numpy())
    diff = float(np.abs(emu_out - fixed_out).max()) if len(x) else 0.0
    info = AdEmulation(
        hls4ml_version=version("hls4ml"), entries=len(x), max_abs_diff=diff, bit_exact=diff == 0.0
    )
    return emu_out, info
