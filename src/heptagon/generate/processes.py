"""The process catalogue: one entry per jet class, with its Pythia settings and its
truth-matching rule in one place, and the named sample sets built from them.

A class is produced by its own Pythia process so that every class gets exactly the
requested number of jets. The truth rule says which generator particle(s) a jet must
contain: for a resonance, the resonance itself and its visible decay products within
``dR < R`` of the jet axis (as in the top-tagging landscape and JetClass definitions);
for quark/gluon jets, the hard-process parton; for AK4 flavour jets, the ghost-associated
hadrons and partons (see :mod:`heptagon.generate.jets`).

A class may also be a production process rather than a parton type: ``Zjet`` and
``dijet`` keep every jet matched to a hard quark or gluon, so each is a natural q/g
mixture, and write the matched parton's PDG id as ``jet_parton_id`` (the true q/g label;
every ``parton`` rule writes it), for weak supervision (CWoLa, arXiv:1708.02949).

The event-level processes and named event samples of ``heptagon generate-events``
(:data:`EVENT_PROCESSES`, :data:`EVENT_SAMPLES`) are catalogued here too. This module is
light (no numpy, no Pythia): the command line builds its help from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from heptagon.errors import ConfigError

__all__ = [
    "CATALOGUE",
    "EVENT_PROCESSES",
    "EVENT_SAMPLES",
    "LABELS",
    "SAMPLE_SETS",
    "XBB_MASSES",
    "EventProcess",
    "Process",
    "SampleSet",
    "TruthRule",
    "get_event_sample",
    "get_process",
    "get_sample_set",
]

_W_HADRONIC = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_W_LEPTONIC = ("24:onMode = off", "24:onIfAny = 11 13")
_TTBAR = ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on")
_W_JET = ("WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on")
_Z_JET = ("WeakBosonAndParton:qqbar2gmZg = on", "WeakBosonAndParton:qg2gmZq = on")
_Z_ONLY = ("WeakZ0:gmZmode = 2",)  # pure Z, no gamma* interference
_Z_NUNU = (*_Z_ONLY, "23:onMode = off", "23:onIfAny = 12 14 16")
_H_JET = (
    "HiggsSM:gg2Hg(l:t) = on",
    "HiggsSM:qg2Hq(l:t) = on",
    "HiggsSM:qqbar2Hg(l:t) = on",
)


@dataclass(frozen=True)
class TruthRule:
    """How a jet of a class is matched to the generator record.

    kind:
        ``"resonance"``: the last copy of a particle with ``|id| == pdg`` whose decay
        products (W/Z/H/t daughters expanded recursively) have exactly ``n_leptons``
        charged leptons (e or mu); the resonance and its visible products must lie within
        ``dR < R`` of the jet axis.
        ``"parton"``: the outgoing hard-process parton (status -23) with ``|id|`` in
        ``parton_ids``, within ``dR < R``; its PDG id is written as ``jet_parton_id``
        (the nearest one where two are within ``R``).
        ``"none"``: no matching (QCD jets: every jet in the window).
        ``"flavour"``: hadron-based flavour by ghost association; the class is the
        flavour label (``b``, ``c``, ``uds``, ``g``).
    """

    kind: Literal["resonance", "parton", "none", "flavour"]
    pdg: int = 0
    n_leptons: int = 0
    parton_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Process:
    """A jet class: its label, the Pythia settings that make it and its truth rule."""

    name: str
    settings: tuple[str, ...]
    truth: TruthRule
    description: str


def _resonance(pdg: int, n_leptons: int = 0) -> TruthRule:
    return TruthRule(kind="resonance", pdg=pdg, n_leptons=n_leptons)


def _higgs(*decay: str) -> tuple[str, ...]:
    return (*_H_JET, "25:onMode = off", *decay)


#: masses [GeV] of the scalar X -> bb resonance scan (classes ``Xbb<mass>``, e.g. for a
#: parameterised network): a Higgs-like scalar with its mass set, produced with a jet
XBB_MASSES = (60, 80, 100, 120, 140)


def _xbb(mass: int) -> Process:
    return Process(
        f"Xbb{mass}",
        _higgs(
            "25:onIfMatch = 5 -5",
            f"25:m0 = {mass}",
            f"25:mMin = {mass / 2:g}",
            f"25:mMax = {mass * 3 / 2:g}",
        ),
        _resonance(25),
        f"scalar X -> bb, m_X = {mass} GeV, in X + jet",
    )


CATALOGUE: dict[str, Process] = {
    p.name: p
    for p in (
        Process("QCD", ("HardQCD:all = on",), TruthRule("none"), "QCD multijet (2 -> 2)"),
        Process("Tbqq", (*_TTBAR, *_W_HADRONIC), _resonance(6), "t -> bW -> bqq' from ttbar"),
        Process("Tbl", (*_TTBAR, *_W_LEPTONIC), _resonance(6, 1), "t -> bW -> bl nu (l = e, mu)"),
        Process("Wqq", (*_W_JET, *_W_HADRONIC), _resonance(24), "W -> qq' in W + jet"),
        Process(
            "Zqq",
            (*_Z_JET, *_Z_ONLY, "23:onMode = off", "23:onIfAny = 1 2 3 4 5"),
            _resonance(23),
            "Z -> qq in Z + jet",
        ),
        Process(
            "Zbb",
            (*_Z_JET, *_Z_ONLY, "23:onMode = off", "23:onIfAny = 5"),
            _resonance(23),
            "Z -> bb in Z + jet",
        ),
        Process("Hbb", _higgs("25:onIfMatch = 5 -5"), _resonance(25), "H -> bb in H + jet"),
        Process("Hcc", _higgs("25:onIfMatch = 4 -4"), _resonance(25), "H -> cc in H + jet"),
        Process("Hgg", _higgs("25:onIfMatch = 21 21"), _resonance(25), "H -> gg in H + jet"),
        Process(
            "H4q",
            _higgs("25:onIfMatch = 24 -24", *_W_HADRONIC),
            _resonance(25),
            "H -> WW* -> 4q in H + jet",
        ),
        Process(
            "Hqql",
            _higgs("25:onIfMatch = 24 -24", "24:onMode = off", "24:onIfAny = 1 2 3 4 5 11 13"),
            _resonance(25, 1),
            "H -> WW* -> qq' l nu (l = e, mu) in H + jet",
        ),
        *(_xbb(mass) for mass in XBB_MASSES),
        Process(
            "q",
            (
                "WeakBosonAndParton:qg2gmZq = on",
                *_Z_NUNU,
            ),
            TruthRule("parton", parton_ids=(1, 2, 3)),
            "light-quark (u, d, s) jet recoiling against Z -> nu nu",
        ),
        Process(
            "g",
            (
                "WeakBosonAndParton:qqbar2gmZg = on",
                *_Z_NUNU,
            ),
            TruthRule("parton", parton_ids=(21,)),
            "gluon jet recoiling against Z -> nu nu",
        ),
        # natural q/g mixtures: every jet matched to a hard quark (d, u, s, c, b) or gluon
        Process(
            "Zjet",
            (*_Z_JET, *_Z_NUNU),
            TruthRule("parton", parton_ids=(1, 2, 3, 4, 5, 21)),
            "jet recoiling against Z -> nu nu, quark or gluon (quark-enriched mixture)",
        ),
        Process(
            "dijet",
            ("HardQCD:all = on",),
            TruthRule("parton", parton_ids=(1, 2, 3, 4, 5, 21)),
            "QCD dijet jet from a hard quark or gluon (gluon-enriched mixture)",
        ),
        # AK4 flavour classes: the label comes from ghost-associated hadrons / partons;
        # each class is drawn from the process that makes it plentifully.
        Process("b", _TTBAR, TruthRule("flavour"), "b jets (b hadron inside) from ttbar"),
        Process("c", _TTBAR, TruthRule("flavour"), "c jets (c hadron, no b) from ttbar"),
        Process("uds", ("HardQCD:all = on",), TruthRule("flavour"), "light-quark QCD jets"),
        Process(
            "g_ak4",
            ("HardQCD:all = on",),
            TruthRule("flavour"),
            "gluon QCD jets (labelled `g`; the catalogue key avoids the q/g class)",
        ),
    )
}


@dataclass(frozen=True)
class SampleSet:
    """A named jet sample: its classes and the default jet definition and selection."""

    name: str
    classes: tuple[str, ...]
    radius: float
    pt_min: float
    pt_max: float
    eta_max: float
    mpi: bool
    use_rapidity: bool = False
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def label_of(self, process: str) -> str:
        """The label branch suffix of a catalogue process in this sample."""
        return self.labels.get(process, process)


SAMPLE_SETS: dict[str, SampleSet] = {
    s.name: s
    for s in (
        SampleSet(
            "top-vs-qcd",
            ("Tbqq", "QCD"),
            radius=0.8,
            pt_min=550.0,
            pt_max=650.0,
            eta_max=2.0,
            mpi=False,
            description="top-tagging landscape definition (arXiv:1902.09914)",
        ),
        SampleSet(
            "w-vs-qcd",
            ("Wqq", "QCD"),
            radius=0.8,
            pt_min=500.0,
            pt_max=1000.0,
            eta_max=2.0,
            mpi=False,
            description="W vs QCD in JetClass's pT window, for mass decorrelation studies",
        ),
        SampleSet(
            "xbb-scan",
            tuple(f"Xbb{mass}" for mass in XBB_MASSES),
            radius=0.8,
            pt_min=500.0,
            pt_max=1000.0,
            eta_max=2.0,
            mpi=False,
            description="scalar X -> bb at several masses (w-vs-qcd's jets), for PNNs",
        ),
        SampleSet(
            "qg",
            ("q", "g"),
            radius=0.4,
            pt_min=500.0,
            pt_max=550.0,
            eta_max=1.7,
            mpi=True,
            use_rapidity=True,
            description="Z(->nu nu) + q/g, Komiske et al. (arXiv:1810.05165)",
        ),
        SampleSet(
            "zjet-vs-dijet",
            ("Zjet", "dijet"),
            radius=0.4,
            pt_min=200.0,
            pt_max=250.0,
            eta_max=1.7,
            mpi=True,
            use_rapidity=True,
            description="q/g mixtures: Z(->nu nu) + jet vs QCD dijet jets, labelled by "
            "production process; the true q/g label is jet_parton_id (arXiv:1708.02949)",
        ),
        SampleSet(
            "jetclass-like",
            ("QCD", "Hbb", "Hcc", "Hgg", "H4q", "Hqql", "Zqq", "Wqq", "Tbqq", "Tbl"),
            radius=0.8,
            pt_min=500.0,
            pt_max=1000.0,
            eta_max=2.0,
            mpi=True,
            description="JetClass's ten classes (arXiv:2202.03772)",
        ),
        SampleSet(
            "ak4-flavour",
            ("b", "c", "uds", "g_ak4"),
            radius=0.4,
            pt_min=30.0,
            pt_max=1000.0,
            eta_max=2.5,
            mpi=True,
            description="AK4 jets with hadron-based flavour labels and secondary vertices",
            labels={"g_ak4": "g"},
        ),
    )
}


# ----------------------------------------------------------- event-level samples


@dataclass(frozen=True)
class EventProcess:
    """An event-level process (``heptagon generate-events``) and its Pythia settings."""

    name: str
    settings: tuple[str, ...]
    description: str


EVENT_PROCESSES: dict[str, EventProcess] = {
    p.name: p
    for p in (
        EventProcess(
            "tth",
            ("HiggsSM:gg2Httbar = on", "HiggsSM:qqbar2Httbar = on"),
            "ttH, all top and Higgs decays (mH = 125 GeV)",
        ),
        EventProcess(
            "ttbar",
            _TTBAR,
            "ttbar, all decays (stands in for ttW / ttZ, which Pythia does not have)",
        ),
        EventProcess(
            "dy",
            (
                "WeakSingleBoson:ffbar2gmZ = on",
                "23:onMode = off",
                "23:onIfAny = 11 13",
                "PhaseSpace:mHatMin = 50",
            ),
            "Drell-Yan Z/gamma* -> ee, mumu with m(ll) > 50 GeV",
        ),
        EventProcess(
            "qcd",
            ("HardQCD:all = on", "PhaseSpace:pTHatMin = 30"),
            "QCD multijet 2 -> 2 with pTHat > 30 GeV",
        ),
        EventProcess("minbias", ("SoftQCD:nonDiffractive = on",), "minimum bias (non-diffractive)"),
    )
}

#: the processes every event sample has a ``label_<process>`` branch for
LABELS: tuple[str, ...] = tuple(EVENT_PROCESSES)

#: named event samples: their processes
EVENT_SAMPLES: dict[str, tuple[str, ...]] = {
    "tth-analysis": ("tth", "ttbar", "dy"),
    **{name: (name,) for name in EVENT_PROCESSES},
}


def get_process(name: str) -> Process:
    """Look up a catalogue entry; a :class:`ConfigError` lists the known names."""
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(sorted(CATALOGUE))
        raise ConfigError(f"unknown process '{name}' (known: {known})", key="sample") from None


def get_sample_set(name: str) -> SampleSet:
    """A named sample set, or a one-class set for a catalogue class name (JetClass defaults:
    R = 0.8, pT 500-1000 GeV, |eta| < 2, MPI on)."""
    if name in SAMPLE_SETS:
        return SAMPLE_SETS[name]
    if name in CATALOGUE:
        return SampleSet(name, (name,), 0.8, 500.0, 1000.0, 2.0, mpi=True, description=name)
    known = ", ".join([*SAMPLE_SETS, *sorted(CATALOGUE)])
    raise ConfigError(f"unknown sample '{name}' (sample sets and classes: {known})", key="sample")


def get_event_sample(name: str) -> tuple[str, ...]:
    """The processes of a named event sample; a :class:`ConfigError` lists the known
    names."""
    try:
        return EVENT_SAMPLES[name]
    except KeyError:
        known = ", ".join(EVENT_SAMPLES)
        raise ConfigError(f"unknown event sample '{name}' (known: {known})", key="sample") from None
