"""The stage packages' curated exports: every name in ``__all__`` resolves to its
module's object, and importing the packages (and the command line) stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["data", "generate", "evaluate", "publish", "infer", "physics"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_resolves(package: str) -> None:
    pkg = importlib.import_module(f"heptagon.{package}")
    names = pkg.__all__
    assert names, package
    assert len(set(names)) == len(names)
    for name in names:
        value = getattr(pkg, name)
        # the object its defining module has, not a submodule of the same name
        assert not isinstance(value, type(pkg)), (package, name)
        module = getattr(value, "__module__", None)
        if module is not None and module.startswith("heptagon."):
            assert getattr(importlib.import_module(module), name) is value, (package, name)
    assert set(dir(pkg)) >= set(names)


def test_unknown_names_are_attribute_errors() -> None:
    import heptagon.generate

    with pytest.raises(AttributeError, match=r"heptagon\.generate.*no_such_name"):
        heptagon.generate.no_such_name  # noqa: B018


def test_importing_the_packages_and_the_cli_stays_light() -> None:
    """No numpy, torch, ONNX or FastJet until a name is used (the CLI builds its help
    from heptagon.generate.options, which imports heptagon.generate first)."""
    code = (
        "import sys, heptagon.cli, heptagon.data, heptagon.generate, heptagon.evaluate, "
        "heptagon.publish, heptagon.physics; "
        "print(sorted(m for m in ('numpy', 'torch', 'onnx', 'fastjet', 'awkward') "
        "if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
