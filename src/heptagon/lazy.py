"""Lazy package exports: a package's public names, imported from its modules on first use.

A stage package (``heptagon.generate``, ``heptagon.evaluate``, ...) lists its public API
in ``__all__`` and re-exports it from the modules that define it, but importing the
package must stay cheap: the command line imports ``heptagon.generate.options`` to build
its help, which imports ``heptagon.generate`` first, and must not pay for numpy,
FastJet or torch. So the package maps each name to its module and hands out
:func:`lazy_exports`' ``__getattr__`` / ``__dir__`` (PEP 562)::

    __getattr__, __dir__ = lazy_exports(__name__, {"run": ("generate", "Summary")})

with the same names imported under ``if TYPE_CHECKING:`` for type checkers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose public names are the
    ``modules`` values, each defined in the key (a module of the package)."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
