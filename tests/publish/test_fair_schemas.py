"""A bundle's FAIR files against the formats' own published schemas, as installed packages
ship them (no download in a test):

- ``CITATION.cff``: the Citation File Format 1.2.0 JSON schema that ``cffconvert`` (PyPI,
  the format's own converter and validator) ships, with its format checks;
- ``codemeta.json``: every key and type a term of the CodeMeta 3.0 JSON-LD context that
  ``codemetapy`` ships (the ``codemeta/codemeta`` repository's ``codemeta.jsonld``);
- ``.zenodo.json``: Zenodo publishes no installable schema of its deposit metadata, so
  the hand-written one of ``fair_schemas/`` checks the rules of its REST API
  documentation (required keys, upload types, relations, licence ids).

Both packages are test dependencies installed without their own dependencies
(``tests/publish/fair_helpers.py``): only their data files are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from fair_helpers import SCHEMAS, cff_schema, codemeta_problems, codemeta_terms

from heptagon.artifacts.bundle import BundleMetadata, TrainingData
from heptagon.errors import ConfigError
from heptagon.publish.fair import FairOptions, environment, keywords, write_fair


def _metadata(options: FairOptions, task: str = "classification") -> BundleMetadata:
    options = options.checked()
    return BundleMetadata(
        title="heptagon particlenet-lite: QCD, Tbqq",
        description="A top tagger (ParticleNet-Lite) trained with heptagon.",
        model_name="particlenet-lite",
        task=task,  # type: ignore[arg-type]
        outputs=["QCD", "Tbqq"],
        license=options.license,
        model_version=options.model_version,
        identifier=options.identifier,
        authors=list(options.authors),
        keywords=keywords(task, ["QCD", "Tbqq"]),
        checkpoint_sha256="0" * 64,
        training_data=TrainingData(
            manifest_sha256="1" * 64,
            kind="jets",
            sample="top-vs-qcd",
            seed=7,
            entries={"QCD": 300, "Tbqq": 300},
            split_fractions=[0.7, 0.15, 0.15],
            split_seed=0,
        ),
        environment=environment(),
    )


def _write(tmp_path: Path, options: FairOptions, task: str = "classification") -> dict[str, Any]:
    write_fair(tmp_path, _metadata(options, task))
    return {
        "cff": yaml.safe_load((tmp_path / "CITATION.cff").read_text()),
        "codemeta": json.loads((tmp_path / "codemeta.json").read_text()),
        "zenodo": json.loads((tmp_path / ".zenodo.json").read_text()),
    }


OPTIONS = [
    FairOptions(),  # the defaults: CC-BY-4.0, 1.0.0, no identifier
    FairOptions(
        license="mit",
        model_version="2.1.0",
        identifier="https://doi.org/10.5281/zenodo.1234567",
        authors=("Doe, Jane", "CMS-like analysis group"),
    ),
    FairOptions(
        license="apache-2.0",
        identifier="https://example.org/models/top/3",
        authors=("Doe, Jane", "Doe, Jane"),  # once in the files: CFF's authors are unique
    ),
]


#: the CFF identifier type of each case (keyed by its licence): none, a DOI, a URL
IDENTIFIER_TYPES = {"CC-BY-4.0": [], "mit": ["doi"], "apache-2.0": ["url"]}


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "doi", "url"])
def test_citation_cff_is_valid_citation_file_format_1_2_0(
    options: FairOptions, tmp_path: Path
) -> None:
    cff = _write(tmp_path, options)["cff"]
    assert cff["license"] == options.checked().license
    assert [i["type"] for i in cff.get("identifiers", [])] == IDENTIFIER_TYPES[options.license]
    assert len(cff["authors"]) == len(set(options.authors))
    validator = jsonschema.Draft7Validator(cff_schema(), format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(cff)]
    assert not errors, errors


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "doi", "url"])
def test_codemeta_json_uses_codemeta_3_terms_only(options: FairOptions, tmp_path: Path) -> None:
    codemeta = _write(tmp_path, options)["codemeta"]
    props, types = codemeta_terms()
    assert codemeta["@context"] == "https://w3id.org/codemeta/3.0"
    assert not codemeta_problems(codemeta, props, types)
    assert codemeta["license"] == f"https://spdx.org/licenses/{options.checked().license}"


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "doi", "url"])
def test_zenodo_json_follows_the_deposit_rules(options: FairOptions, tmp_path: Path) -> None:
    zenodo = _write(tmp_path, options)["zenodo"]
    jsonschema.validate(zenodo, json.loads((SCHEMAS / "zenodo.schema.json").read_text()))


def test_the_checks_catch_what_the_formats_forbid(tmp_path: Path) -> None:
    """The validators are not blind: a licence outside SPDX's list, a key that is no
    CodeMeta term and a Zenodo relation that does not exist are each found."""
    files = _write(tmp_path, FairOptions())
    validator = jsonschema.Draft7Validator(cff_schema(), format_checker=jsonschema.FormatChecker())
    assert list(validator.iter_errors({**files["cff"], "license": "Not-A-Licence"}))
    assert list(validator.iter_errors({**files["cff"], "date-released": "yesterday"}))
    props, types = codemeta_terms()
    bad = {**files["codemeta"], "softwareRequirement": [], "author": [{"@type": "Human"}]}
    assert sorted(codemeta_problems(bad, props, types)) == [
        "author[0].@type Human", "softwareRequirement",
    ]  # fmt: skip
    related = [{"identifier": "x", "relation": "isBuiltBy"}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**files["zenodo"], "related_identifiers": related},
            json.loads((SCHEMAS / "zenodo.schema.json").read_text()),
        )


def test_keywords_and_authors_are_unique_as_cff_requires() -> None:
    assert keywords("anomaly", ["QCD", "anomaly", "QCD"]) == [
        "particle physics", "machine learning", "ONNX", "anomaly", "QCD",
    ]  # fmt: skip
    assert FairOptions(authors=("Doe, Jane", " Doe, Jane ", "")).checked().authors == ("Doe, Jane",)


@pytest.mark.parametrize(
    "licence",
    ["Apache-2.0 OR MIT", "GPL-2.0-only WITH Classpath-exception-2.0", "LicenseRef-mine"],
)
def test_a_licence_the_formats_cannot_express_is_refused(licence: str) -> None:
    """Zenodo takes one licence id and CFF ids of SPDX's list: an expression or a
    LicenseRef would make an invalid file, so publish refuses it."""
    with pytest.raises(ConfigError) as err:
        FairOptions(license=licence).checked()
    assert err.value.key == "--license"
