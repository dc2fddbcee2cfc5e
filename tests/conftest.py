"""Shared fixtures: one tiny generated top-vs-QCD sample per test session, cached.

The cache lives in pytest's cache dir, keyed by a hash of the generate stage's source, so
a code change regenerates it and a clean clone (CI) generates it once (~15 s). The test
command runs the suite in two pytest-xdist workers, which share that dir: a lock on it
lets the first worker generate a sample while the other waits, then verifies and skips it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import heptagon.generate as generate_pkg
from heptagon.generate.run import GenerateOptions, generate
from heptagon.logs import ROOT_LOGGER

#: the shared sample: jets per class and shard size (two shards per class)
SAMPLE_JETS = 300
SAMPLE_SHARD = 150
SAMPLE_SEED = 7


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test (``pytestmark = pytest.mark.usefixtures(...)``): the
    cores are shared, and two threads contend badly under load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _unconfigured_logging() -> Iterator[None]:
    """Undo the logging set-up of a command run in this process (``heptagon.logs.configure``
    from the CLI's root callback), whose handlers hold this test's captured stderr."""
    yield
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def _source_hash() -> str:
    h = hashlib.sha256()
    artifacts = Path(generate_pkg.__file__).parent.parent / "artifacts"  # the manifest's model
    for f in sorted([*Path(generate_pkg.__file__).parent.glob("*.py"), *artifacts.glob("*.py")]):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


@contextlib.contextmanager
def _sample_cache(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The shared samples' cache dir, held exclusively while in the block."""
    root = Path(request.config.cache.mkdir("heptagon-samples"))
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield root


def _jet_sample(root: Path, name: str, **options: Any) -> Path:
    """``generate`` (seed 7) into ``root/<name>-<source hash>``, where a finished sample is
    verified and skipped; the dataset dir."""
    out = root / f"{name}-{_source_hash()}"
    settings = {"seed": SAMPLE_SEED, "out": out, **options}
    generate(GenerateOptions.model_validate(settings), show_progress=False)
    return out


@pytest.fixture(scope="session")
def top_qcd_sample(request: pytest.FixtureRequest) -> Path:
    """A top-vs-QCD dataset dir (300 jets per class, 2 shards per class, seed 7)."""
    with _sample_cache(request) as root:
        return _jet_sample(
            root, "top-vs-qcd", sample="top-vs-qcd", jets=SAMPLE_JETS, shard_size=SAMPLE_SHARD
        )


#: the shared event sample (tth-analysis): events per class and shard size (two shards)
EVENT_SAMPLE_EVENTS = 300
EVENT_SAMPLE_SHARD = 150


@pytest.fixture(scope="session")
def event_sample(request: pytest.FixtureRequest) -> Path:
    """A tth-analysis event dataset dir (ttH, ttbar, DY; 300 events each, 2 shards per
    class, no MPI, seed 7)."""
    from heptagon.generate.events import EventOptions, generate_events

    with _sample_cache(request) as root:
        out = root / f"tth-analysis-{_source_hash()}"
        generate_events(
            EventOptions(
                sample="tth-analysis",
                events=EVENT_SAMPLE_EVENTS,
                seed=SAMPLE_SEED,
                out=out,
                mpi=False,
                shard_size=EVENT_SAMPLE_SHARD,
            ),
            show_progress=False,
        )
    return out


#: the paired FastSim / FullSim sample (docs/refinement.md): light-quark AK4 jets
PAIRED_JETS = 80
PAIRED_SHARD = 40


@pytest.fixture(scope="session")
def paired_samples(request: pytest.FixtureRequest) -> dict[str, Path]:
    """The same generator events through ``--detector full`` and ``--detector fast``:
    ``uds`` AK4 jets (30-1000 GeV, |eta| < 2.5), 80 jets, 2 shards, seed 7; by chain."""
    with _sample_cache(request) as root:
        return {
            chain: _jet_sample(
                root,
                f"uds-{chain}",
                sample="uds",
                jets=PAIRED_JETS,
                shard_size=PAIRED_SHARD,
                radius=0.4,
                pt_min=30.0,
                pt_max=1000.0,
                eta_max=2.5,
                detector=chain,
            )
            for chain in ("full", "fast")
        }


#: the tag-and-probe samples (docs/scale-factors.md): probe jets of the simulation (and
#: of each of its HCAL-scale variations) and of the pseudo-data, per shard of 20
TAG_PROBE_SIM = 60
TAG_PROBE_DATA = 40


@pytest.fixture(scope="session")
def tag_probe_samples(request: pytest.FixtureRequest) -> dict[str, Path]:
    """Semileptonic-ttbar tag-and-probe dataset dirs (``heptagon sf generate``): ``sim``
    (60 probes, seed 7, with the ISR / FSR weight columns), ``jes_hcal_up`` and
    ``jes_hcal_down`` (the same options but the variation: the same generator events)
    and ``pseudo`` (40 probes, seed 8, pseudo-data seed 11); by name."""
    from heptagon.generate.tagprobe import TagProbeOptions, generate_tag_probe

    plans: dict[str, dict[str, object]] = {
        "sim": {"probes": TAG_PROBE_SIM, "weight_variations": True},
        "jes_hcal_up": {
            "probes": TAG_PROBE_SIM,
            "variation": "jes_hcal_up",
            "weight_variations": True,
        },
        "jes_hcal_down": {
            "probes": TAG_PROBE_SIM,
            "variation": "jes_hcal_down",
            "weight_variations": True,
        },
        "pseudo": {"probes": TAG_PROBE_DATA, "seed": SAMPLE_SEED + 1, "pseudo_data": 11},
    }
    out = {}
    with _sample_cache(request) as root:
        for name, plan in plans.items():
            out[name] = root / f"tag-probe-{name}-{_source_hash()}"
            options = {"seed": SAMPLE_SEED, "out": out[name], "shard_size": 20, **plan}
            generate_tag_probe(TagProbeOptions.model_validate(options), show_progress=False)
    return out
