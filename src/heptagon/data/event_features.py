"""Standard event-level features: named expressions over NanoAOD-style branches.

``Jet_*`` (pT-ordered, with ``Jet_btag``), ``Muon_*``, ``Electron_*``, ``MET_pt``,
``MET_phi``: heptagon's event samples (``heptagon generate-events``) and CMS NanoAOD alike.
The kinds of features of event-level analysis classifiers (the CMS ttH / ttZ multilepton
DNNs): object pT / eta and b-tag scores, multiplicities, H_T, MET, m_T, dR and invariant
masses of the closest and next-closest pairs, sphericity and aplanarity; plus the derived
collections they use (``Lepton_*``: muons and electrons by pT; ``BJet_*``: the b-tagged
jets; ``Object_*``: jets and leptons by pT, an ordered object list for a 1D CNN) and two
analysis regions as boolean features (``region_loose``: >= 1 lepton and >= 4 jets;
``region_multilepton``: >= 3 leptons or 2 same-sign leptons) for a data config's
``selection``.

Features that need more objects than an event has (the 2nd b jet, the closest b-jet pair)
are 0. On NanoAOD, map the b tag in ``new_variables`` (it takes precedence), e.g.
``{Jet_btag: Jet_btagDeepFlavB, Jet_isB: Jet_btagDeepFlavB > 0.2783}``. GeV, radians.
"""

from __future__ import annotations

__all__ = ["EVENT_FEATURES"]

_OBJECT = ("pt", "eta", "phi", "mass")


def _pair(quantity: str, collection: str, rank: int) -> str:
    args = ", ".join(f"{collection}_{v}" for v in _OBJECT)
    return f"pair_{quantity}({args}, {rank}, 0)"


def _cross(quantity: str) -> str:
    args = ", ".join(f"{c}_{v}" for c in ("Lepton", "BJet") for v in _OBJECT)
    return f"cross_pair_{quantity}({args}, 0, 0)"


#: name -> expression defining it
EVENT_FEATURES: dict[str, str] = {
    # derived collections
    **{
        f"Lepton_{v}": f"merge_by_pt(Muon_pt, Electron_pt, Muon_{v}, Electron_{v})"
        for v in (*_OBJECT, "charge")
    },
    "Jet_isB": "Jet_btag > 0.5",
    **{f"BJet_{v}": f"select(Jet_{v}, Jet_isB)" for v in _OBJECT},
    **{f"Object_{v}": f"merge_by_pt(Jet_pt, Lepton_pt, Jet_{v}, Lepton_{v})" for v in _OBJECT},
    "Object_logpt": "log(Object_pt)",
    "Object_btag": "merge_by_pt(Jet_pt, Lepton_pt, Jet_btag, zeros_like(Lepton_pt))",
    "Object_isLepton": "merge_by_pt(Jet_pt, Lepton_pt, zeros_like(Jet_pt), ones_like(Lepton_pt))",
    # multiplicities and sums
    "n_jets": "num(Jet_pt)",
    "n_bjets": "num(BJet_pt)",
    "n_leptons": "num(Lepton_pt)",
    "ht": "sum(Jet_pt)",
    "met": "MET_pt",
    # leading objects
    **{f"jet{i + 1}_{v}": f"at(Jet_{v}, {i}, 0)" for i in range(6) for v in ("pt", "eta", "btag")},
    **{f"bjet{i + 1}_{v}": f"at(BJet_{v}, {i}, 0)" for i in range(2) for v in ("pt", "eta")},
    **{f"lep{i + 1}_{v}": f"at(Lepton_{v}, {i}, 0)" for i in range(2) for v in ("pt", "eta")},
    # masses and angles
    "mt_lep1": "mt(lep1_pt, at(Lepton_phi, 0, 0), MET_pt, MET_phi)",
    "m_ll": "leading_pair_mass(Lepton_pt, Lepton_eta, Lepton_phi, Lepton_mass, 0)",
    **{
        f"{q}_{short}_{which}": _pair(q, collection, rank)
        for q in ("dr", "mass")
        for short, collection in (("bb", "BJet"), ("jj", "Jet"))
        for which, rank in (("closest", 0), ("next", 1))
    },
    "dr_lb_closest": _cross("dr"),
    "mass_lb_closest": _cross("mass"),
    # event shapes (jets)
    "sphericity": "sphericity(Jet_pt, Jet_eta, Jet_phi, Jet_mass)",
    "aplanarity": "aplanarity(Jet_pt, Jet_eta, Jet_phi, Jet_mass)",
    # analysis regions, for a data config's selection
    "region_loose": "(n_leptons >= 1) & (n_jets >= 4)",
    "region_multilepton": (
        "(n_leptons >= 3) | ((n_leptons == 2) & (at(Lepton_charge, 0, 0) * "
        "at(Lepton_charge, 1, 0) > 0))"
    ),
}
