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

from typing import TYPE_CHECKING

from heptagon.lazy import lazy_exports

if TYPE_CHECKING:
    from heptagon.data.config import DataConfig, load_config
    from heptagon.data.expr import Expr
    from heptagon.data.features import FEATURES
    from heptagon.data.inspect import Inspection, inspect_files
    from heptagon.data.io import expand_files, open_reader
    from heptagon.data.loader import Batch, JetDataset, make_dataloader, mask_name
    from heptagon.data.preprocess import Preprocess, compute_preprocess
    from heptagon.data.split import Split

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


__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "config": ("DataConfig", "load_config"),
        "expr": ("Expr",),
        "features": ("FEATURES",),
        "inspect": ("Inspection", "inspect_files"),
        "io": ("expand_files", "open_reader"),
        "loader": ("Batch", "JetDataset", "make_dataloader", "mask_name"),
        "preprocess": ("Preprocess", "compute_preprocess"),
        "split": ("Split",),
    },
)
