"""The 16 high-level jet features of the hls4ml L1 jet-tagging benchmark (Duarte et al.
2018, arXiv:1804.06913; Coleman et al. 2018, arXiv:1709.08705), from jet constituents.

FastJet does the work: the jet's constituents are re-clustered with C/A, groomed with the
modified mass-drop tagger (mMDT: soft drop with beta = 0, z_cut = 0.1, R0 = the jet
radius), and the generalised energy correlation functions ``v e_N^(beta)`` (``pt_R``
measure, normalised to the groomed jet's pT; fastjet's ``func="generalized"``) of the
groomed constituents give the ratios (Larkoski, Salam, Thaler 2013; Larkoski, Neill,
Thaler 2014; Moult, Necib, Thaler 2016)::

    C1^b = e2^b             C2^b = e3^b / (e2^b)^2      D2^b = e3^b / (e2^b)^3
    D2^(a,b) = e3^a / (e2^b)^(3a/b)    M2^b = 1e3^b / e2^b     N2^b = 2e3^b / (e2^b)^2

(``e3`` with all three angles; ``1e3`` / ``2e3`` with the smallest one / two). ``D2^(1,1)``
equals ``D2^1`` by this definition. ``zlogz = sum z_i ln z_i`` (``z_i = pT_i / sum pT``) and
the multiplicity are taken on the ungroomed jet; ``mass_mmdt`` is the groomed mass (GeV).
A ratio whose denominator vanishes (a groomed jet of one particle) is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import fastjet
import numpy as np
from numpy.typing import NDArray

from heptagon.data.io import expand_files, open_reader
from heptagon.errors import DataError
from heptagon.generate.jets import silence_fastjet_banner
from heptagon.io import atomic_path, make_dir

__all__ = ["HLF_NAMES", "PART_BRANCHES", "features_file", "high_level_features"]

#: the benchmark's features, in the order of its dataset (``j_`` prefix dropped)
HLF_NAMES = (
    "zlogz",
    "c1_b0_mmdt",
    "c1_b1_mmdt",
    "c1_b2_mmdt",
    "c2_b1_mmdt",
    "c2_b2_mmdt",
    "d2_b1_mmdt",
    "d2_b2_mmdt",
    "d2_a1_b1_mmdt",
    "d2_a1_b2_mmdt",
    "m2_b1_mmdt",
    "m2_b2_mmdt",
    "n2_b1_mmdt",
    "n2_b2_mmdt",
    "mass_mmdt",
    "multiplicity",
)


def _ratio(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def high_level_features(
    px: ak.Array,
    py: ak.Array,
    pz: ak.Array,
    energy: ak.Array,
    radius: float,
    source: Path | None = None,
) -> NDArray[np.float32]:
    """``(n_jets, 16)`` features in :data:`HLF_NAMES` order from jagged constituent
    momenta (GeV; e.g. the ``part_px/py/pz/energy`` branches) of jets of ``radius``.

    Raises :class:`DataError` (naming ``source``, the file, where given) for a jet without
    constituents, NaN/inf momenta, or a jet whose features are not finite (e.g. every
    constituent along the beam: no transverse momentum), as train and predict refuse them.
    """
    counts = np.asarray(ak.num(px, axis=1))
    if counts.size and counts.min() < 1:
        first = int(np.argmin(counts))
        raise DataError(f"jet {first} of the chunk has no constituents", source, "part_px")
    for name, values in zip(PART_BRANCHES, (px, py, pz, energy), strict=True):
        flat = np.asarray(ak.flatten(values, axis=None))
        n_bad = flat.size - int(np.count_nonzero(np.isfinite(flat)))
        if n_bad:
            raise DataError(f"{n_bad} NaN/inf values", source, name)
    n = counts.size
    if n == 0:
        return np.zeros((0, len(HLF_NAMES)), dtype=np.float32)
    silence_fastjet_banner()
    cons = ak.zip({"px": px, "py": py, "pz": pz, "E": energy})
    recluster = fastjet.JetDefinition(fastjet.cambridge_algorithm, max(1.0, 2 * radius))
    seq = fastjet.ClusterSequence(cons, recluster)
    groomed = seq.exclusive_jets_softdrop_grooming(njets=1, beta=0.0, symmetry_cut=0.1, R0=radius)
    gseq = fastjet.ClusterSequence(groomed.constituents, recluster)

    def ecf(npoint: int, angles: int, beta: float) -> NDArray[np.float64]:
        values = gseq.exclusive_jets_energy_correlator(
            njets=1, func="generalized", npoint=npoint, angles=angles, beta=beta, normalized=True
        )
        return np.asarray(values, dtype=np.float64)

    e2 = {b: ecf(2, -1, b) for b in (0.0, 1.0, 2.0)}
    e3 = {b: ecf(3, -1, b) for b in (1.0, 2.0)}
    e3_1 = {b: ecf(3, 1, b) for b in (1.0, 2.0)}
    e3_2 = {b: ecf(3, 2, b) for b in (1.0, 2.0)}
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):  # z ln z -> 0 as z -> 0
        z = pt / ak.sum(pt, axis=1)
        zlogz = np.asarray(ak.sum(ak.where(z > 0, z * np.log(z), 0.0), axis=1), np.float64)
    columns = [
        zlogz,
        e2[0.0],
        e2[1.0],
        e2[2.0],
        _ratio(e3[1.0], e2[1.0] ** 2),
        _ratio(e3[2.0], e2[2.0] ** 2),
        _ratio(e3[1.0], e2[1.0] ** 3),
        _ratio(e3[2.0], e2[2.0] ** 3),
        _ratio(e3[1.0], e2[1.0] ** 3),
        _ratio(e3[1.0], e2[2.0] ** 1.5),
        _ratio(e3_1[1.0], e2[1.0]),
        _ratio(e3_1[2.0], e2[2.0]),
        _ratio(e3_2[1.0], e2[1.0] ** 2),
        _ratio(e3_2[2.0], e2[2.0] ** 2),
        np.asarray(groomed.msoftdrop, dtype=np.float64),
        counts.astype(np.float64),
    ]
    out = np.stack(columns, axis=1).astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        jet, feat = (int(i[0]) for i in np.nonzero(bad))
        raise DataError(
            f"{int(bad.any(axis=1).sum())} jets give NaN/inf features (first: jet {jet} of "
            "the chunk; no transverse momentum?)",
            source,
            f"hlf_{HLF_NAMES[feat]}",
        )
    return out


#: the constituent branches the features are computed from
PART_BRANCHES = ("part_px", "part_py", "part_pz", "part_energy")


def features_file(
    sources: str | Path | Sequence[str | Path],
    out: str | Path,
    radius: float,
    chunk_size: int = 5000,
) -> int:
    """Compute the 16 features (columns ``hlf_<name>``) of every jet of ``sources``
    (files, globs, dataset dirs; JetClass branch names) and write them, with the inputs'
    ``label_*`` branches, to the Parquet file ``out``. A label branch that only some
    inputs carry (one-class samples) is false for the jets of the others. Returns the
    number of jets. An output directory that cannot be created, or an output that cannot
    be written, is a :class:`DataError` naming it."""
    out = Path(out)
    make_dir(out.parent)  # before the work: a bad --out fails at once
    chunks: list[dict[str, np.ndarray]] = []
    for path in expand_files(sources):
        with open_reader(path) as reader:
            reader.check_branches(PART_BRANCHES)
            labels = [b for b in reader.branches if b.startswith("label_")]
            for unit in reader.units(chunk_size):
                for chunk in reader.read(unit, [*PART_BRANCHES, *labels], chunk_size):
                    a = chunk.arrays
                    px, py, pz, e = (a[b] for b in PART_BRANCHES)
                    x = high_level_features(px, py, pz, e, radius=radius, source=path)
                    table = {f"hlf_{name}": x[:, i] for i, name in enumerate(HLF_NAMES)}
                    chunks.append(table | {b: np.asarray(a[b], dtype=bool) for b in labels})
    names = list(dict.fromkeys(k for c in chunks for k in c))
    n_jets = sum(len(c[f"hlf_{HLF_NAMES[0]}"]) for c in chunks)
    columns = {
        k: np.concatenate([c.get(k, np.zeros(len(c["hlf_zlogz"]), dtype=bool)) for c in chunks])
        for k in names
    }
    try:
        with atomic_path(out) as tmp:
            ak.to_parquet(ak.zip(columns), tmp)
    except OSError as err:
        raise DataError(f"cannot write the output ({err.strerror or err})", out) from None
    return n_jets
