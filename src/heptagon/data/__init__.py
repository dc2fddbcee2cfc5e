"""The data stage: ROOT / Parquet / benchmark-layout files -> padded, standardised batches.

Typical use::

    from heptagon.data import JetDataset, compute_preprocess, load_config, make_dataloader

    config = load_config("data.yaml")
    preprocess = compute_preprocess(files, config)      # once, on the training files
    preprocess.save(run_dir / "preprocess.json")
    train = JetDataset(files, config, preprocess, split="train", batch_size=256)
    for batch in make_dataloader(train, num_workers=2):
        batch = batch.to(device)   # batch.inputs, batch.masks, batch.label, batch.weight

Names are imported lazily, so ``import heptagon.data`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from heptagon.data.config import DataConfig, load_config
    from heptagon.data.expr import Expr
    from heptagon.data.features import FEATURES
    from heptagon.data.inspect import Inspection, inspect_files
    from heptagon.data.io import expand_files, open_reader
    from heptagon.data.loader import Batch, JetDataset, make_dataloader, mask_name
    from heptagon.data.preprocess import Preprocess, compute_preprocess
    from heptagon.data.split import Split

_WHERE = {
    "FEATURES": "features",
    "Batch": "loader",
    "DataConfig": "config",
    "Expr": "expr",
    "Inspection": "inspect",
    "JetDataset": "loader",
    "Preprocess": "preprocess",
    "Split": "split",
    "compute_preprocess": "preprocess",
    "expand_files": "io",
    "inspect_files": "inspect",
    "load_config": "config",
    "make_dataloader": "loader",
    "mask_name": "loader",
    "open_reader": "io",
}

__all__ = [
    "FEATURES",
    "Batch",
    "DataConfig",
    "Expr",
    "Inspection",
    "JetDataset",
    "Preprocess",
    "Split",
    "compute_preprocess",
    "expand_files",
    "inspect_files",
    "load_config",
    "make_dataloader",
    "mask_name",
    "open_reader",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'heptagon.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"heptagon.data.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return __all__
