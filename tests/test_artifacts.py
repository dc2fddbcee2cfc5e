"""heptagon.artifacts: every JSON file heptagon writes and reads back goes through a
versioned pydantic model; unknown, newer or malformed files are one-line DataErrors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from heptagon.artifacts import Artifact, Record
from heptagon.errors import DataError


class _Part(Record):
    n: int


class _Toy(Artifact):
    SCHEMA_VERSION: ClassVar[int] = 3
    WHAT: ClassVar[str] = "toy file"
    name: str
    parts: tuple[_Part, ...] = ()


def test_base_round_trip_writes_current_version(tmp_path: Path) -> None:
    toy = _Toy(name="a", parts=[_Part(n=2)])
    toy.write(tmp_path / "toy.json")
    raw = json.loads((tmp_path / "toy.json").read_text())
    assert raw["schema_version"] == 3
    assert _Toy.read(tmp_path / "toy.json") == toy


@pytest.mark.parametrize(
    ("version", "words"),
    [(None, "no schema_version"), (4, "newer"), (2, "older"), ("3", "not an integer")],
)
def test_base_version_errors_name_file_and_key(tmp_path: Path, version: object, words: str) -> None:
    raw: dict[str, object] = {"name": "a"}
    if version is not None:
        raw["schema_version"] = version
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=words) as info:
        _Toy.read(path)
    assert info.value.file == str(path)
    assert info.value.key == "schema_version"
    assert "\n" not in str(info.value)


def test_base_malformed_field_names_dotted_key(tmp_path: Path) -> None:
    path = tmp_path / "toy.json"
    path.write_text(json.dumps({"schema_version": 3, "name": "a", "parts": [{"n": "x"}]}))
    with pytest.raises(DataError, match=r"parts\.0\.n") as info:
        _Toy.read(path)
    assert info.value.key == "parts.0.n"


def test_base_schema_pins_version() -> None:
    assert _Toy.model_json_schema()["properties"]["schema_version"]["const"] == 3
