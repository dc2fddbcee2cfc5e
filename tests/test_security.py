"""No code path in ``src/`` can run code handed to it in a file (docs/security.md).

The scan is syntactic (the AST of every module), so it catches the forbidden calls however
they are spelled in the source, and it is itself tested on snippets that hold each of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "heptagon"

#: modules whose loading runs code from the bytes they read
UNSAFE_MODULES = frozenset(
    {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
)
#: builtins that execute strings as code
UNSAFE_BUILTINS = frozenset({"eval", "exec"})
#: attribute calls that unpickle (pandas' HDF5 / pickle readers go through PyTables pickles)
UNSAFE_ATTRS = frozenset(
    {"read_pickle", "read_hdf", "HDFStore", "unsafe_load", "full_load", "load_model_with_pickle"}
)


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_uses(source: str) -> list[str]:
    """The forbidden constructs in ``source``: one string per use, with its line."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "") in UNSAFE_MODULES:
            found.append(f"{line}: from {node.module} import")
        elif isinstance(node, ast.keyword) and node.arg == "allow_pickle" and _is_true(node.value):
            found.append(f"{line}: allow_pickle=True")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_BUILTINS:
                found.append(f"{line}: {func.id}()")
            elif isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else ""
                if func.attr in UNSAFE_ATTRS:
                    found.append(f"{line}: {func.attr}()")
                elif owner == "yaml" and func.attr == "load":
                    found.append(f"{line}: yaml.load()")
                elif owner == "torch" and func.attr == "load":
                    weights_only = _keyword(node, "weights_only")
                    if weights_only is None or not _is_true(weights_only):
                        found.append(f"{line}: torch.load() without weights_only=True")
    return found


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        ("import pickle", "import pickle"),
        ("import numpy as np, cloudpickle", "import cloudpickle"),
        ("from pickle import loads", "from pickle import"),
        ("x = eval('1 + 1')", "eval()"),
        ("exec(code)", "exec()"),
        ("yaml.load(text, Loader=yaml.Loader)", "yaml.load()"),
        ("yaml.unsafe_load(text)", "unsafe_load()"),
        ("torch.load(path)", "torch.load() without weights_only=True"),
        ("torch.load(path, weights_only=False)", "torch.load() without weights_only=True"),
        ("np.load(path, allow_pickle=True)", "allow_pickle=True"),
        ("pd.HDFStore(path)", "HDFStore()"),
        ("pandas.read_hdf(path)", "read_hdf()"),
    ],
)
def test_the_scan_finds_each_forbidden_construct(snippet: str, what: str) -> None:
    assert [u.split(": ", 1)[1] for u in unsafe_uses(snippet)] == [what]


@pytest.mark.parametrize(
    "snippet",
    [
        "model.eval()",
        "torch.load(path, map_location='cpu', weights_only=True)",
        "yaml.safe_load(text)",
        "np.load(path, allow_pickle=False)",
        "ast.literal_eval(text)",
    ],
)
def test_the_scan_accepts_the_safe_spellings(snippet: str) -> None:
    assert unsafe_uses(snippet) == []


def test_no_module_of_heptagon_can_run_code_from_a_file() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50  # the package itself, not an empty glob
    found = {str(f.relative_to(SRC)): uses for f in files if (uses := unsafe_uses(f.read_text()))}
    assert found == {}
