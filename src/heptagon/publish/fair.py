"""FAIR metadata of a bundle: ``metadata.json`` (:class:`~heptagon.artifacts.bundle.
BundleMetadata`), ``CITATION.cff``, ``codemeta.json`` and ``.zenodo.json``, all rendered
from one :class:`BundleMetadata` so they say the same thing.

The licence is the user's choice (``publish --license``, one SPDX licence id), by default
:data:`DEFAULT_LICENSE` (CC-BY-4.0: reuse with attribution, the usual licence of a
published model's weights); the model version defaults to :data:`DEFAULT_VERSION` and
the persistent identifier (a DOI, e.g. the one Zenodo reserves for a new deposit) is an
empty slot until given. The software environment is recorded as heptagon's version with a
digest of its installed package files, and each key dependency's version with the sha256
of its installed file list (``RECORD``); the training data as the dataset manifest's
sha256 (the manifest lists every shard's sha256) with its sample, seed and sizes.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import yaml
from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

import heptagon
from heptagon.artifacts.bundle import (
    BundleMetadata,
    CffEntity,
    CffIdentifier,
    CffPerson,
    CitationFile,
    CodeMeta,
    CodeMetaPerson,
    Environment,
    PackageRecord,
    ZenodoCreator,
    ZenodoMetadata,
    ZenodoRelated,
)
from heptagon.errors import ConfigError
from heptagon.io import atomic_path, sha256sum, write_json_atomic
from heptagon.publish.fair_defaults import DEFAULT_AUTHOR, DEFAULT_LICENSE, DEFAULT_VERSION

__all__ = [
    "CITATION_FILE",
    "CODEMETA_FILE",
    "DEFAULT_AUTHOR",
    "DEFAULT_LICENSE",
    "DEFAULT_VERSION",
    "KEY_PACKAGES",
    "METADATA_FILE",
    "ZENODO_FILE",
    "FairOptions",
    "environment",
    "keywords",
    "write_fair",
]

METADATA_FILE = "metadata.json"
CITATION_FILE = "CITATION.cff"
CODEMETA_FILE = "codemeta.json"
ZENODO_FILE = ".zenodo.json"
#: the dependencies whose versions and RECORD digests the environment records
KEY_PACKAGES = (
    "torch",
    "numpy",
    "onnx",
    "onnxruntime",
    "pydantic",
    "awkward",
    "uproot",
    "pyarrow",
    "scikit-learn",
    "xgboost-cpu",
    "xgboost",
    "pythia8mc",
    "fastjet",
    "hepdata_lib",
)
#: one SPDX licence id (no expression: Zenodo's deposit takes one id, CFF listed ids)
_LICENSE_ID = re.compile(r"[A-Za-z0-9.+-]+")
_URL = re.compile(r"https?://\S+$")
_DOI = re.compile(r"(?:doi:|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9}/\S+)", re.IGNORECASE)
#: heptagon's repository: the software the bundle is compiled by (Zenodo / CFF)
SOFTWARE = "heptagon"


@dataclass(frozen=True)
class FairOptions:
    """The user's choices: licence (one id of the SPDX list), model version, persistent
    identifier (None: an empty slot) and authors (``'Family, Given'``, or an entity's
    name)."""

    license: str = DEFAULT_LICENSE
    model_version: str = DEFAULT_VERSION
    identifier: str | None = None
    authors: tuple[str, ...] = (DEFAULT_AUTHOR,)

    def checked(self) -> FairOptions:
        """The options with the licence in its canonical SPDX spelling; a
        :class:`ConfigError` naming the option that is not valid."""
        try:
            spdx = canonicalize_license_expression(self.license)
        except InvalidLicenseExpression:
            raise ConfigError(
                f"{self.license!r} is not an SPDX licence (e.g. CC-BY-4.0, MIT)",
                "--license",
            ) from None
        if not _LICENSE_ID.fullmatch(spdx) or spdx.startswith("LicenseRef-"):
            raise ConfigError(
                f"{spdx!r}: give one licence of the SPDX list (e.g. CC-BY-4.0, MIT); "
                "CITATION.cff and Zenodo record a listed licence id, not an expression",
                "--license",
            )
        if not self.model_version.strip():
            raise ConfigError("must not be empty", "--model-version")
        authors = tuple(dict.fromkeys(a.strip() for a in self.authors if a.strip()))
        if not authors:
            raise ConfigError("at least one author", "--author")
        return FairOptions(spdx, self.model_version.strip(), self.identifier or None, authors)


def _source_sha256() -> str:
    """The digest of heptagon's installed package files (see ``Environment``)."""
    root = Path(heptagon.__file__).parent
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.relative_to(root).parts
    )
    lines = "".join(f"{sha256sum(p)}  {p.relative_to(root).as_posix()}\n" for p in files)
    return sha256(lines.encode()).hexdigest()


def _package(name: str) -> PackageRecord | None:
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return None
    record = dist.read_text("RECORD")
    digest = sha256(record.encode()).hexdigest() if record else None
    return PackageRecord(version=dist.version, record_sha256=digest)


def environment() -> Environment:
    """The software environment of this process (the installed ones of
    :data:`KEY_PACKAGES`)."""
    packages = {name: rec for name in KEY_PACKAGES if (rec := _package(name)) is not None}
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        heptagon=heptagon.__version__,
        heptagon_source_sha256=_source_sha256(),
        packages=packages,
    )


def _doi(identifier: str | None) -> str | None:
    match = _DOI.fullmatch(identifier or "")
    return match.group(1) if match else None


def _citation(meta: BundleMetadata) -> CitationFile:
    authors: list[CffPerson | CffEntity] = []
    for a in meta.authors:
        family, sep, given = a.partition(",")
        authors.append(
            CffPerson(family_names=family.strip(), given_names=given.strip() or None)
            if sep
            else CffEntity(name=a)
        )
    doi = _doi(meta.identifier)
    kind = "doi" if doi else "url" if _URL.match(meta.identifier or "") else "other"
    identifiers = (
        [CffIdentifier(type=kind, value=doi or meta.identifier)] if meta.identifier else None
    )
    return CitationFile(
        message="If you use this model, please cite it using these metadata.",
        title=meta.title,
        authors=authors,
        version=meta.model_version,
        license=meta.license,
        abstract=meta.description,
        keywords=meta.keywords,
        identifiers=identifiers,
    )


def _codemeta(meta: BundleMetadata) -> CodeMeta:
    authors = []
    for a in meta.authors:
        family, sep, given = a.partition(",")
        authors.append(
            CodeMetaPerson(type="Person", family_name=family.strip(), given_name=given.strip())
            if sep
            else CodeMetaPerson(type="Organization", name=a)
        )
    env = meta.environment
    return CodeMeta(
        name=meta.title,
        description=meta.description,
        version=meta.model_version,
        license=f"https://spdx.org/licenses/{meta.license}",
        author=authors,
        keywords=meta.keywords,
        identifier=meta.identifier,
        software_requirements=[
            f"onnxruntime>={env.packages['onnxruntime'].version}"
            if "onnxruntime" in env.packages
            else "onnxruntime",
            f"heptagon=={env.heptagon}",
        ],
    )


def _zenodo(meta: BundleMetadata) -> ZenodoMetadata:
    return ZenodoMetadata(
        title=meta.title,
        creators=[ZenodoCreator(name=a) for a in meta.authors],
        description=meta.description,
        license=meta.license.lower(),
        version=meta.model_version,
        keywords=meta.keywords,
        related_identifiers=[
            ZenodoRelated(
                identifier=f"{SOFTWARE}=={meta.environment.heptagon}",
                relation="isCompiledBy",
                resource_type="software",
            )
        ],
        doi=_doi(meta.identifier),
    )


def write_fair(bundle: Path, meta: BundleMetadata) -> list[Path]:
    """Write ``metadata.json``, ``CITATION.cff``, ``codemeta.json`` and ``.zenodo.json`` of
    ``meta`` into ``bundle``; return their paths."""
    paths = [bundle / n for n in (METADATA_FILE, CITATION_FILE, CODEMETA_FILE, ZENODO_FILE)]
    meta.write(paths[0])
    cff = _citation(meta).model_dump(mode="json", by_alias=True, exclude_none=True)
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(yaml.safe_dump(cff, sort_keys=False, allow_unicode=True))
    for path, model in ((paths[2], _codemeta(meta)), (paths[3], _zenodo(meta))):
        write_json_atomic(path, model.model_dump(mode="json", by_alias=True, exclude_none=True))
    return paths


def keywords(task: str, classes: Sequence[str]) -> list[str]:
    """The bundle's keywords: the field, the task and the classes, each once (CFF's
    keywords are unique)."""
    return list(dict.fromkeys(["particle physics", "machine learning", "ONNX", task, *classes]))
