"""``heptagon train``: experiment YAML + data -> run directory.

:func:`train` resolves the experiment (``--set`` overrides included), computes (or, on
resume, reloads) the standardisation, builds the model from the registry and trains it:
torch models by gradient descent (:class:`~heptagon.train.trainer.Trainer`), fit/predict
models such as the BDT by their own ``fit`` (:mod:`heptagon.train.fitpredict`). Under
``torchrun`` every process calls it; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from heptagon.artifacts.run import ModelInfo, NetworkRecord
from heptagon.config import load_yaml
from heptagon.cpu import retain_freed_memory, uncache_kernels
from heptagon.data.config import DataConfig
from heptagon.data.loader import JetDataset, mask_name
from heptagon.data.preprocess import Preprocess, compute_preprocess
from heptagon.data.split import DataSplits, Split, resolve_splits
from heptagon.errors import ConfigError, DataError, Interrupted, ModelError
from heptagon.io import atomic_path, sha256sum
from heptagon.logs import get_logger
from heptagon.models import Model, build_model, model_options
from heptagon.models.autoencoder import ReconstructionModel
from heptagon.train.continual import (
    EWC,
    Continual,
    ParentRun,
    ReplayBatches,
    check_observers,
    fisher_batches,
    parent_run,
    replay_table,
)
from heptagon.train.device import select_device
from heptagon.train.distributed import Distributed, init_distributed
from heptagon.train.experiment import (
    ExperimentConfig,
    ModelFlags,
    ModelSpec,
    RunConfig,
    TrainOptions,
    load_experiment,
)
from heptagon.train.finetune import initialise, load_weights, pretrained_state
from heptagon.train.fitpredict import fit_model
from heptagon.train.losses import WeightedLoss
from heptagon.train.network import NETWORK_COPY, UserNetwork, build_network
from heptagon.train.rundir import (
    RunDir,
    RunSummary,
    load_checkpoint,
    model_info,
    write_yaml_atomic,
)
from heptagon.train.seeding import seed_everything
from heptagon.train.tasks import AnomalyTask, JetTask
from heptagon.train.trainer import CHECKPOINT_FORMAT, Trainer

__all__ = ["input_dims", "train"]

_log = get_logger("train")


def input_dims(config: DataConfig) -> dict[str, int]:
    """Variables per input group, plus the masks of jagged groups (``pf_mask``: 1)."""
    dims = {group: len(spec.vars) for group, spec in config.inputs.items()}
    for group, spec in config.inputs.items():
        if spec.length is not None and spec.mask:
            dims.setdefault(mask_name(group), 1)
    return dims


def train(
    experiment: str | Path,
    data: str | Path | Sequence[str | Path] | None,
    out: str | Path,
    overrides: Sequence[str] = (),
    resume: bool = False,
    flags: ModelFlags | None = None,
    *,
    data_train: Sequence[str | Path] = (),
    data_val: Sequence[str | Path] = (),
    data_test: Sequence[str | Path] = (),
    continual: Continual | None = None,
) -> RunSummary:
    """Train the experiment on ``data`` (files, globs, dataset dirs or URLs; split by the
    hash rule) into run dir ``out``; or, with ``data`` None, on the explicit sets
    ``data_train`` / ``data_val``, each read whole (``data_test`` is recorded for
    ``evaluate``; weaver's ``name:glob`` entries are accepted).

    ``overrides``: ``key=value`` strings (``train.lr=1e-3``). ``resume``: continue from
    ``out/checkpoints/last.pt`` (the experiment, data and overrides must resolve to the
    run's ``config.yaml``). ``flags``: the command's ``--network-config``,
    ``--load-model-weights``, ``--strict/--no-strict`` and ``--freeze``. ``continual``: a
    top-up of another run (``--continue-from``, ``--ewc``, ``--replay``;
    :mod:`heptagon.train.continual`): its weights (loaded strictly, as ``init``) and its
    standardisation are the start. Raises
    :class:`~heptagon.errors.ConfigError` naming the key for a bad experiment,
    :class:`~heptagon.errors.DataError` for bad data.
    """
    if continual is not None:
        continual.run_dir()  # a missing run fails first
        flags = flags or ModelFlags()
        if flags.weights is not None or flags.strict is False:
            raise ConfigError(
                "--continue-from starts from the run's own weights, loaded strictly: drop "
                "--load-model-weights and --no-strict",
                "--continue-from",
            )
        flags = replace(flags, weights=continual.run, strict=True)
    config = load_experiment(experiment, overrides, flags)
    splits = resolve_splits(data, train=data_train, val=data_val, test=data_test)
    options = config.train
    device = select_device(options.device)
    if device.type == "cpu":
        retain_freed_memory()
        if options.bucketing and any(g.length for g in config.data.inputs.values()):
            uncache_kernels()  # each batch padded to its own length: no shape repeats
    dist = init_distributed(device.type == "cuda")
    try:
        if dist.active and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(device)
        summary = _train(config, splits, Path(out), resume, device, dist, continual)
        dist.barrier()  # no rank leaves the group while another still has work in flight
        return summary
    finally:
        dist.close()


def _train(
    config: ExperimentConfig,
    splits: DataSplits,
    out: Path,
    resume: bool,
    device: torch.device,
    dist: Distributed,
    continual: Continual | None = None,
) -> RunSummary:
    options = config.train
    run = RunDir(out)
    model_spec, resolved = _resolve(config, splits)
    parent = _parent(continual, config, model_spec, dist)
    if resume:
        _check_resume(run, resolved)
        _check_resumed_parent(run, parent, continual)
        preprocess = Preprocess.load(run.preprocess)
    else:
        if run.config.exists():
            raise ConfigError(
                f"{out} already holds a run: pass --resume to continue it, or another --out",
                "--out",
            )
        preprocess = (
            parent.preprocess
            if parent is not None
            else dist.broadcast(_preprocess(config, splits) if dist.is_main else None)
        )

    seed_everything(options.seed)
    labels = config.data.labels
    assert labels is not None  # ExperimentConfig checks it
    dims = input_dims(config.data)
    n_out = len(labels.names)
    model, network = _build(model_spec, config.data, dims, n_out)
    gradient = isinstance(model, nn.Module)
    _check_model(model, config, dist, network, run if resume else None)
    if config.init is not None and isinstance(model, nn.Module):
        initialise(model, config.init, resumed=resume)
    top_up = (
        _top_up(parent, continual, model, preprocess, config, resume)
        if parent is not None and continual is not None and isinstance(model, nn.Module)
        else None
    )
    # every input file is opened and its branches (labels included) checked here, before
    # the run dir is written: a bad input leaves nothing behind
    train_data, val_data = (
        JetDataset(
            splits.files(name),
            config.data,
            preprocess,
            split=name,
            shuffle=gradient and name == "train",
            bucketing=gradient and options.bucketing,
            split_fractions=splits.fractions(name, config.split.fractions),
            batch_size=options.batch_size,
            buffer_size=options.buffer_size,
            seed=options.seed,
            augment=options.augment if name == "train" else None,
        )
        for name in ("train", "val")
    )
    weights = "checkpoints/best.pt" if gradient else "checkpoints/best.json"
    try:
        if dist.is_main and not resume:
            run.make()
            write_yaml_atomic(run.config, resolved)
            preprocess.save(run.preprocess)
            info = model_info(
                model_spec.name,
                model_spec.options,
                cast("tuple[str, ...]", model.input_names),
                n_out,
                dims,
                list(labels.names),
                options.task,
                weights,
                _keep_network(run, network),
            )
            if parent is not None and continual is not None:
                info = info.model_copy(update={"parent": parent.record(continual)})
            run.write_model_info(info)
        dist.barrier()
        if not isinstance(model, nn.Module):
            return fit_model(model, config, train_data, val_data, run)
        loss = network.loss if network is not None and network.loss is not None else None
        return _fit(
            model, config, train_data, val_data, run, resume, device, dist, loss, top_up
        )
    except BaseException as err:
        started = run.last.exists() or (run.root / weights).exists()
        if dist.is_main and not resume and not started:
            _discard(run)
        if isinstance(err, KeyboardInterrupt):
            raise Interrupted(_interrupted(run, started)) from None
        raise


def _fit(
    model: nn.Module,
    config: ExperimentConfig,
    train_data: JetDataset,
    val_data: JetDataset,
    run: RunDir,
    resume: bool,
    device: torch.device,
    dist: Distributed,
    loss: WeightedLoss | None = None,
    top_up: _TopUp | None = None,
) -> RunSummary:
    """Train a torch model by gradient descent, from ``last.pt`` if resuming; ``loss``
    replaces ``train.loss`` (a network file's ``get_loss``); ``top_up``: EWC's penalty
    and the replayed batches of a top-up."""
    options = config.train
    names = cast("tuple[str, ...]", model.input_names)
    top_up = top_up or _TopUp(None, None)
    fraction = train_data.split_info["fractions"]["train"]
    total_steps = _total_steps(options, train_data, fraction, dist.world)
    per_epoch = 0
    if top_up.replay is not None:  # the schedule counts the replayed batches too
        one = options.model_copy(update={"epochs": 1, "max_steps": None})
        per_epoch = _total_steps(one, train_data, fraction, dist.world)
        total = options.epochs * (per_epoch + len(top_up.replay))
        total_steps = min(total, options.max_steps or total)
    task: JetTask
    if options.task == "anomaly":
        labels = config.data.labels
        assert labels is not None  # ExperimentConfig checks it
        task = AnomalyTask(
            loss or options.loss.build(), names, train_data=train_data, val_data=val_data,
            background=[labels.names.index(c) for c in options.background],
            num_workers=options.num_workers, pin_memory=device.type == "cuda",
        )  # fmt: skip
    else:
        task = JetTask(
            loss or options.loss.build(),
            names,
            train_data=train_data,
            val_data=val_data,
            classification=options.task == "classification",
            num_workers=options.num_workers,
            pin_memory=device.type == "cuda",
            regularisers=[spec.build() for spec in options.regularisers],
            penalty=top_up.penalty,
            replay=top_up.replay,
            batches_per_epoch=per_epoch,
        )
    trainer = Trainer(
        model,
        task,
        options,
        run=run,
        device=device,
        dist=dist,
        total_steps=total_steps,
    )
    checkpoint = _load_last(run) if resume and run.last.exists() else None
    state = trainer.fit(checkpoint)
    return RunSummary(
        run.root,
        model,
        state.step,
        state.epoch,
        state.best_val_loss,
        state.stopped_early,
        state.history,
    )


@dataclass(frozen=True)
class _TopUp:
    """What a top-up adds to the training: EWC's penalty, the replayed batches."""

    penalty: Callable[[], torch.Tensor] | None
    replay: ReplayBatches | None


def _parent(
    continual: Continual | None, config: ExperimentConfig, spec: ModelSpec, dist: Distributed
) -> ParentRun | None:
    """The run ``--continue-from`` names, checked against the experiment (one process)."""
    if continual is None:
        return None
    if dist.active:
        raise ConfigError(
            "a top-up trains in one process: run it without torchrun", "--continue-from"
        )
    sha = None if spec.network is None else sha256sum(Path(spec.network))
    return parent_run(continual, config, spec, sha)


def _check_resumed_parent(
    run: RunDir, parent: ParentRun | None, continual: Continual | None
) -> None:
    """A resumed top-up continues with the same --continue-from, --ewc and --replay."""
    recorded = ModelInfo.read(run.model_json).parent if run.model_json.exists() else None
    wanted = None if parent is None or continual is None else parent.record(continual)
    if recorded != wanted:
        raise ConfigError(
            "resume with the run's own --continue-from, --ewc and --replay "
            f"({'none' if recorded is None else recorded.to_json()})",
            "--continue-from",
        )


def _top_up(
    parent: ParentRun,
    continual: Continual,
    model: nn.Module,
    preprocess: Preprocess,
    config: ExperimentConfig,
    resumed: bool,
) -> _TopUp:
    """EWC's penalty (the Fisher on the parent's training split, at the parent's weights)
    and the replayed entries of the parent's training split."""
    options = config.train
    names = cast("tuple[str, ...]", model.input_names)
    penalty = None
    if continual.ewc is not None:
        if resumed:  # the run's checkpoint is loaded later: the anchor is the parent's
            load_weights(model, pretrained_state(parent.root)[1], strict=True)
        ewc = EWC(continual.ewc)
        n = ewc.consolidate_batches(model, fisher_batches(parent, preprocess, names))
        _log.info(f"EWC: Fisher of {parent.root} on {n} batches of its training split")
        penalty = partial(ewc.penalty, model)
    replay = None
    if continual.replay is not None:
        table = replay_table(parent, preprocess, continual.replay, options.seed)
        check_observers(table, [spec.observable for spec in options.regularisers])
        replay = ReplayBatches(
            table, preprocess, batch_size=options.batch_size,
            fixed_length=not options.bucketing, seed=options.seed,
        )  # fmt: skip
        _log.info(f"replay: {len(table)} entries of {parent.root}'s training split")
    return _TopUp(penalty, replay)


def _load_last(run: RunDir) -> dict[str, Any]:
    """``last.pt``, checked to be a training checkpoint of heptagon."""
    checkpoint = load_checkpoint(run.last)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"not a {CHECKPOINT_FORMAT} file", run.last, "format")
    return checkpoint


def _discard(run: RunDir) -> None:
    """Remove what a run that failed before its first checkpoint wrote (and its dir, if
    then empty), so that the same command can start it again."""
    for path in (run.config, run.model_json, run.preprocess, run.history, run.root / NETWORK_COPY):
        path.unlink(missing_ok=True)
    for folder in (run.checkpoints, run.root):
        with contextlib.suppress(OSError):  # not empty: something else is in it
            folder.rmdir()


def _interrupted(run: RunDir, started: bool) -> str:
    """What an interrupted run kept, and how to go on."""
    if not started:
        return "before the first checkpoint: nothing was kept; run the same command again"
    if not run.last.exists():  # a fit/predict model: its one checkpoint is the result
        return f"the trained model is in {run.root}"
    state = load_checkpoint(run.last)["state"]
    return (
        f"the last checkpoint (epoch {state['epoch']}, step {state['step']}) is in "
        f"{run.root}; run the same command with --resume to continue"
    )


def _model_options(name: str) -> dict[str, Any]:
    """The model's options with defaults; an unknown model is a ConfigError (``model.name``)."""
    try:
        return model_options(name)
    except ModelError as err:
        raise ConfigError(str(err), "model.name") from None


def _resolve(config: ExperimentConfig, splits: DataSplits) -> tuple[ModelSpec, dict[str, Any]]:
    """The model spec with every option, and the run's ``config.yaml`` content."""
    options = config.model.options
    if config.model.network is None:
        options = {**_model_options(config.model.name), **options}
    model_spec = config.model.model_copy(update={"options": options})
    run_config = RunConfig(
        **{**dict(config), "model": model_spec},
        **splits.recorded(),
        split_rule=splits.rule(config.split.fractions),
        versions={"heptagon": version("heptagon"), "torch": torch.__version__},
    )
    return model_spec, run_config.model_dump(mode="json")


def _check_model(
    model: Model,
    config: ExperimentConfig,
    dist: Distributed,
    network: UserNetwork | None,
    resumed: RunDir | None,
) -> None:
    """What a model must satisfy before anything is written: a fit/predict model trains
    in one process and takes no pre-trained weights; a resumed run's network file is
    the one it started with."""
    if isinstance(model, ReconstructionModel) != (config.train.task == "anomaly"):
        raise ConfigError(
            f"model '{config.model.name}' "
            + ("reconstructs its input: train it with train.task: anomaly (docs/anomaly.md)"
               if isinstance(model, ReconstructionModel)
               else "is not an autoencoder (autoencoder, vae), which train.task: anomaly needs"),
            "train.task",
        )  # fmt: skip
    if not isinstance(model, nn.Module):
        if dist.active:
            raise ConfigError(
                "a fit/predict model trains in one process: run it without torchrun",
                "model.name",
            )
        if config.init is not None:
            raise ConfigError("pre-trained weights need a torch model", "init.weights")
    if network is not None and resumed is not None:
        recorded = ModelInfo.read(resumed.model_json).network
        if recorded is None or recorded.sha256 != network.sha256:
            started = "no network file" if recorded is None else (
                f"{recorded.source}, sha256 {recorded.sha256[:12]}..."
            )
            raise ConfigError(
                f"{network.path} is not the network file the run started with ({started})",
                "model.network",
            )


def _keep_network(run: RunDir, network: UserNetwork | None) -> NetworkRecord | None:
    """Copy the network file into the run (provenance only: it is never imported from
    there by itself) and return ``model.json``'s ``network`` record."""
    if network is None:
        return None
    with atomic_path(run.root / NETWORK_COPY) as tmp:
        shutil.copyfile(network.path, tmp)
    return NetworkRecord(file=NETWORK_COPY, source=str(network.path), sha256=network.sha256)


def _build(
    spec: ModelSpec, data: DataConfig, dims: dict[str, int], n_out: int
) -> tuple[Model, UserNetwork | None]:
    """Build from the registry or the network file; registry error keys become
    experiment keys."""
    if spec.network is not None:
        network = build_network(spec.network, data, spec.options)
        return network.module, network
    try:
        return build_model(spec.name, dims, n_out, **spec.options), None
    except ConfigError as err:
        key = err.key or ""
        prefix = {"options": "model.", "inputs": "data.", "num_classes": "data.labels."}
        message = str(err).removeprefix(f"{err.key}: ")
        raise ConfigError(message, prefix.get(key.split(".")[0], "model.") + key) from None


def _preprocess(config: ExperimentConfig, splits: DataSplits) -> Preprocess:
    if not config.data.has_auto:
        return Preprocess.from_config(config.data)
    return compute_preprocess(
        splits.train,
        config.data,
        split=Split(splits.fractions("train", config.split.fractions)),
    )


def _check_resume(run: RunDir, resolved: dict[str, Any]) -> None:
    if not run.config.exists():
        raise ConfigError(f"nothing to resume: {run.config} does not exist", "--resume")
    saved = load_yaml(run.config)
    for key in resolved:
        if key != "versions" and saved.get(key) != resolved[key]:
            where = _first_difference(saved.get(key), resolved[key], key)
            raise ConfigError(
                "differs from the run's config.yaml: resume with the same experiment, --data "
                "and --set",
                where,
            )


def _first_difference(a: Any, b: Any, key: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{key}.{k}")
    return key


def _total_steps(
    options: TrainOptions, train_data: JetDataset, train_fraction: float, world: int
) -> int:
    """Steps of the whole run, for the lr schedule."""
    per_epoch = options.steps_per_epoch
    if per_epoch is None:
        entries = sum(unit.stop - unit.start for unit in train_data.units)
        per_epoch = max(1, math.ceil(entries * train_fraction / (options.batch_size * world)))
    total = options.epochs * per_epoch
    return int(min(total, options.max_steps or total))
