"""The torch device of a stage: CUDA when there is one, unless told otherwise."""

from __future__ import annotations

from typing import Literal, TypeAlias

import torch

from heptagon.errors import ConfigError

__all__ = ["DeviceChoice", "select_device"]

#: what a config or option may ask for
DeviceChoice: TypeAlias = Literal["auto", "cpu", "cuda"]


def select_device(choice: DeviceChoice = "auto", key: str = "train.device") -> torch.device:
    """``auto``: CUDA if available, else the CPU. Asking for ``cuda`` on a machine without
    it is a :class:`~heptagon.errors.ConfigError` on ``key``."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available on this machine", key)
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)
