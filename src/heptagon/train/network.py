"""A user's own network file, in weaver-core's convention (``--network-config my_net.py``).

The file is a Python module that defines::

    def get_model(data_config, **options):   # -> (torch.nn.Module, model_info dict)
    def get_loss(data_config, **options):    # optional: the training loss

as a network file written for weaver-core does. ``data_config`` is a
:class:`WeaverDataConfig`, built from heptagon's data config with the attributes weaver's
network files read (``input_names``, ``input_shapes``, ``input_dicts``, ``label_value``,
...), so such a file runs unchanged; ``options`` are the experiment's ``model.options``.
The module's ``forward`` takes the input groups in the order of ``model_info
["input_names"]`` (default: ``data_config.input_names``) and returns ``(batch, classes)``
logits, as weaver trains it (heptagon's export adds the softmax).

**Trust.** A network file is code, and importing it runs it: it is trusted like a script
the user runs. This is the only place heptagon imports code from a path, and only from a
path the user named (``--network-config`` or the ``model.network`` key of their
experiment). A run records the file's sha256 in ``model.json`` and keeps a copy as
``RUN/network.py`` for provenance, but re-loading the run (evaluate, export, publish) never
imports that copy by itself: the user names the file again (``--network-config``: the
command runs within :func:`trusted_networks`), and its sha256 must be the recorded one.
Naming the run's own copy is allowed: that is the user's explicit decision to trust it.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from torch import Tensor, nn

from heptagon.data.config import DataConfig
from heptagon.data.loader import mask_name
from heptagon.errors import ConfigError, first_line
from heptagon.io import sha256sum
from heptagon.train.losses import WeightedLoss, weighted_mean

__all__ = [
    "NETWORK_COPY",
    "UserLoss",
    "UserNetwork",
    "WeaverDataConfig",
    "build_network",
    "rebuild_network",
    "trusted_networks",
    "weaver_data_config",
]

#: the name of the network file's copy in a run directory
NETWORK_COPY = "network.py"

#: sha256 -> path of the network files the user named (:func:`trusted_networks`)
_TRUSTED: ContextVar[Mapping[str, Path]] = ContextVar(
    "heptagon_trusted_networks", default=MappingProxyType({})
)


@dataclass(frozen=True)
class WeaverDataConfig:
    """What weaver-core's ``DataConfig`` gives a network file's ``get_model``.

    ``input_shapes[name]`` is ``(-1, n_vars, length)`` for a jagged group (masks:
    ``(-1, 1, length)``) and ``(-1, n_vars)`` for a flat one; ``input_dicts[name]`` its
    variable names; ``label_value`` the label branches (or the class names of a label map);
    ``num_classes`` is their number.
    """

    input_names: tuple[str, ...]
    input_shapes: dict[str, tuple[int, ...]]
    input_dicts: dict[str, list[str]]
    label_type: str
    label_value: list[str] | dict[str, str]
    label_names: tuple[str, ...]
    num_classes: int
    observer_names: tuple[str, ...]
    weight_name: str | None


def weaver_data_config(config: DataConfig) -> WeaverDataConfig:
    """The weaver-compatible view of ``config`` (with the masks of its jagged groups)."""
    shapes: dict[str, tuple[int, ...]] = {}
    dicts: dict[str, list[str]] = {}
    for name, group in config.inputs.items():
        dicts[name] = [v.name for v in group.vars]
        if group.length is None:
            shapes[name] = (-1, len(group.vars))
        else:
            shapes[name] = (-1, len(group.vars), group.length)
    for name, group in config.inputs.items():
        if group.length is not None and group.mask and mask_name(name) not in shapes:
            shapes[mask_name(name)] = (-1, 1, group.length)
            dicts[mask_name(name)] = [mask_name(name)]
    labels = config.labels
    if labels is None:
        raise ConfigError("a network file needs labels in the data config", "data.labels")
    simple = labels.type == "simple"
    value = list(labels.value) if simple else labels.value  # a label map: its class names
    return WeaverDataConfig(
        input_names=tuple(shapes),
        input_shapes=shapes,
        input_dicts=dicts,
        label_type=labels.type,
        label_value=value,
        label_names=("_label_",) if simple else tuple(labels.names),
        num_classes=len(labels.names),
        observer_names=tuple(config.observers),
        weight_name="_weight_" if config.weights is not None else None,
    )


class UserLoss(WeightedLoss):
    """A network file's ``get_loss`` result as a heptagon loss.

    ``fn(output, target)`` returning one value per entry (``reduction="none"``) is averaged
    with the event weights; a scalar (weaver's usual ``CrossEntropyLoss()``) is used as
    it is, so the event weights do not enter it (as in weaver-core, which applies them by
    sampling).
    """

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, output: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        """The loss of the batch."""
        value = self.fn(output.float(), target)
        if value.ndim == 1:
            return weighted_mean(value, weight.float())
        return value


@dataclass(frozen=True)
class UserNetwork:
    """A network built from a user's file: the module (its ``input_names`` set), the loss of
    the file's ``get_loss`` (``None`` without one), and the file's path and sha256."""

    module: nn.Module
    loss: UserLoss | None
    path: Path
    sha256: str


@contextmanager
def trusted_networks(paths: Iterable[str | Path]) -> Iterator[None]:
    """Within the block, :func:`rebuild_network` may import the network files at ``paths``
    (the ones the user named) for a run that recorded their sha256. Raises
    :class:`ConfigError` (key ``--network-config``) for a file that cannot be read."""
    named = {_sha256(Path(p).resolve()): Path(p).resolve() for p in paths}
    token = _TRUSTED.set({**_TRUSTED.get(), **named})
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def build_network(path: str | Path, config: DataConfig, options: Mapping[str, Any]) -> UserNetwork:
    """Import the network file at ``path`` and build its model for ``config``.

    ``options`` go to ``get_model`` (and ``get_loss``) as keyword arguments. Raises
    :class:`ConfigError` (key ``model.network``) for a file that does not import, has no
    ``get_model``, or whose ``get_model`` fails or returns something else than
    ``(module, model_info)``, and (key ``model.options``) for options it does not take.
    """
    path = Path(path).resolve()
    digest = _sha256(path)
    module = _import(path, digest)
    weaver_config = weaver_data_config(config)
    get_model = getattr(module, "get_model", None)
    if not callable(get_model):
        raise ConfigError(f"{path} defines no get_model(data_config, **options)", "model.network")
    _check_options(get_model, options, path)
    result = _call(get_model, weaver_config, options, path)
    if not (
        isinstance(result, tuple)
        and len(result) == 2
        and isinstance(result[0], nn.Module)
        and isinstance(result[1], Mapping)
    ):
        raise ConfigError(
            f"get_model of {path} must return (torch.nn.Module, model_info dict)",
            "model.network",
        )
    model, info = result
    names = tuple(info.get("input_names", weaver_config.input_names))
    unknown = [n for n in names if n not in weaver_config.input_shapes]
    if unknown:
        raise ConfigError(
            f"get_model of {path} takes input(s) {unknown} that the data config does not "
            f"provide (it has {', '.join(weaver_config.input_names)})",
            "model.network",
        )
    model.input_names = names
    get_loss = getattr(module, "get_loss", None)
    loss = UserLoss(_call(get_loss, weaver_config, options, path)) if callable(get_loss) else None
    return UserNetwork(model, loss, path, digest)


def rebuild_network(
    record: Mapping[str, Any], config: DataConfig, options: Mapping[str, Any], run: Path
) -> nn.Module:
    """The module of a run's network (``model.json``'s ``network`` record), from the file
    the user named (:func:`trusted_networks`) that has the recorded sha256.

    Raises :class:`ConfigError` (key ``--network-config``) when no such file was named:
    heptagon does not import code from a run directory by itself.
    """
    digest = str(record.get("sha256", ""))
    path = _TRUSTED.get().get(digest)
    if path is None:
        raise ConfigError(
            f"the model of {run} comes from the network file {record.get('source')} "
            f"(sha256 {digest[:12]}...), code that heptagon does not import from a run "
            f"directory by itself: pass that file with --network-config (the run's copy is "
            f"{run / NETWORK_COPY}, if you trust where the run came from)",
            "--network-config",
        )
    return build_network(path, config, options).module


def _sha256(path: Path) -> str:
    try:
        return sha256sum(path)
    except OSError as err:
        raise ConfigError(
            f"cannot read the network file {path}: {err.strerror}", "--network-config"
        ) from None


def _import(path: Path, digest: str) -> ModuleType:
    """Run the file as a module (trusted user code: see the module's docstring)."""
    spec = importlib.util.spec_from_file_location(f"heptagon_network_{digest[:16]}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path} is not a Python file", "model.network")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: its error, on one line
        raise ConfigError(
            f"{path} fails to import: {type(err).__name__}: {first_line(err)}", "model.network"
        ) from None
    return module


def _check_options(fn: Callable[..., Any], options: Mapping[str, Any], path: Path) -> None:
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    known = {p.name for p in params} - {"data_config"}
    for option in options:
        if option not in known:
            raise ConfigError(
                f"get_model of {path} takes no option '{option}'", f"model.options.{option}"
            )


def _call(
    fn: Callable[..., Any], config: WeaverDataConfig, options: Mapping[str, Any], path: Path
) -> Any:
    try:
        return fn(config, **options)
    except Exception as err:  # the user's code: its error, on one line
        raise ConfigError(
            f"{fn.__name__} of {path} failed: {type(err).__name__}: {first_line(err)}",
            "model.network",
        ) from None
