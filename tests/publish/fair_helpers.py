"""Helpers of the FAIR-file tests: the outside formats' schemas, read from the packages
that ship them (installed without their dependencies: only their data files are read).

``pip install --no-deps cffconvert==2.0.0 codemetapy==3.0.4`` (their own dependencies
would replace jsonschema 4 with 3 and pull rdflib; nothing of theirs is imported)."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest

#: the hand-written schema of the Zenodo deposit rules (no installable public schema)
SCHEMAS = Path(__file__).parent / "fair_schemas"

__all__ = ["SCHEMAS", "cff_schema", "codemeta_problems", "codemeta_terms"]


def _data_file(dist: str, path: str) -> Path:
    try:
        found = Path(str(distribution(dist).locate_file(path)))
    except PackageNotFoundError:
        pytest.fail(
            f"the test dependency {dist} is not installed: pip install --no-deps "
            "cffconvert==2.0.0 codemetapy==3.0.4"
        )
    assert found.is_file(), found
    return found


def cff_schema() -> dict[str, Any]:
    """The Citation File Format 1.2.0 schema, as cffconvert ships it."""
    schema: dict[str, Any] = json.loads(
        _data_file("cffconvert", "cffconvert/schemas/1.2.0/schema.json").read_text()
    )
    return schema


def codemeta_terms() -> tuple[set[str], set[str]]:
    """The CodeMeta 3.0 context's terms: (property names, type names)."""
    context = json.loads(_data_file("codemetapy", "codemeta/schema/codemeta.jsonld").read_text())[
        "@context"
    ]
    types = {k for k in context if k[:1].isupper()}
    return set(context) - types, types


def codemeta_problems(node: Any, props: set[str], types: set[str], where: str = "") -> list[str]:
    """Keys of ``node`` (and of the objects in it) that are no CodeMeta term, and ``@type``
    values that are no CodeMeta type."""
    problems: list[str] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            problems += codemeta_problems(item, props, types, f"{where}[{i}].")
    elif isinstance(node, dict):
        for key, value in node.items():
            name = f"{where}{key}"
            if key == "@type":
                problems += [f"{name} {value}"] if value not in types else []
            elif key not in {"@context", "@id"} and key not in props:
                problems.append(name)
            inner = name if isinstance(value, list) else f"{name}."
            problems += codemeta_problems(value, props, types, inner)
    return problems
