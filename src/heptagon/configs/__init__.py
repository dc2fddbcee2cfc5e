"""The ready configs, shipped with the package: experiments and the data configs they use.

An experiment is ``NAME.yaml`` in this package; a data config is ``data/NAME.yaml`` below
it, and an experiment names its data config by a path relative to its own file
(``data: data/top_kinematic.yaml``). A config is named without ``.yaml``
(``top_particlenet_lite``, ``data/top_kinematic``); its description is the first sentence
of the comment block it starts with.

>>> names()[:2]
['analysis_bdt', 'analysis_dnn']
>>> copy("top_particlenet_lite", "my-configs")  # doctest: +SKIP
[PosixPath('my-configs/top_particlenet_lite.yaml'), PosixPath('my-configs/data/top_kinematic.yaml')]
"""

from __future__ import annotations

import difflib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from heptagon.errors import ConfigError, DataError
from heptagon.io import atomic_path, make_dir

__all__ = ["copy", "describe", "names", "read"]

#: the data configs' folder, relative to the experiments (and in a copy)
DATA = "data"


def _root() -> Traversable:
    return resources.files(__name__)


def names() -> list[str]:
    """Every shipped config: the experiments, then the data configs (``data/NAME``)."""
    root = _root()
    experiments = sorted(f.name for f in root.iterdir() if f.name.endswith(".yaml"))
    data = sorted(f.name for f in root.joinpath(DATA).iterdir() if f.name.endswith(".yaml"))
    return [n.removesuffix(".yaml") for n in experiments] + [
        f"{DATA}/{n.removesuffix('.yaml')}" for n in data
    ]


def _file(name: str) -> Traversable:
    """The config called ``name`` (a trailing ``.yaml`` is allowed); an unknown name is a
    :class:`ConfigError` listing the close matches."""
    name = name.removesuffix(".yaml")
    known = names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"no shipped config '{name}'{hint} ('heptagon configs list' shows them all)"
        )
    return _root().joinpath(*f"{name}.yaml".split("/"))


def read(name: str) -> str:
    """The YAML text of the config ``name``."""
    return _file(name).read_text()


def describe(name: str) -> str:
    """The first sentence (up to a '.' or ':' outside parentheses) of the comment block
    that starts the config ``name``."""
    lines = []
    for line in read(name).splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    depth = 0  # a '.' or ':' inside parentheses does not end the sentence
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".:" and text[i + 1 : i + 2] in ("", " "):
            return text[:i]
    return text


def _data_reference(name: str) -> str | None:
    """The data config an experiment names by path (relative to itself), if any."""
    if name.removesuffix(".yaml").startswith(f"{DATA}/"):
        return None
    data = yaml.safe_load(read(name))
    reference = data.get("data") if isinstance(data, dict) else None
    return reference if isinstance(reference, str) else None


def copy(name: str, dest: str | Path, *, force: bool = False) -> list[Path]:
    """Copy the config ``name`` to ``dest/NAME.yaml``, an experiment with the data config it
    references (at the same relative path, so the copy trains as it is); returns the files
    written. Existing files are a :class:`ConfigError` unless ``force``; nothing is written
    then. Every file is written atomically; a folder that cannot be made or written is a
    :class:`DataError` naming it."""
    dest = Path(dest)
    name = name.removesuffix(".yaml")
    files = {dest / f"{name}.yaml": read(name)}
    reference = _data_reference(name)
    if reference is not None:
        files[dest / reference] = read(reference)
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist(s); --force overwrites")
    for path, text in files.items():
        make_dir(path.parent)
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(text)
        except OSError as err:
            raise DataError(f"cannot write the config ({err.strerror})", file=path) from None
    return list(files)
