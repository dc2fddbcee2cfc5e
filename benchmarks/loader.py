"""Loader throughput and memory: files -> padded float32 tensors, vs a bare read.

    python benchmarks/loader.py [--jets 100000] [--buffer 10000] [--batch-size 256]
                                [--chunk-size 10000] [--workdir DIR] [--name loader]

Writes a JetClass-schema Parquet dataset (``--jets`` jets, row groups of ``--chunk-size``;
``--jets`` defaults to 10x the shuffle buffer), then measures, in this process:

- bare read: pyarrow ``read_row_group`` of the branches the config needs, every column
  converted to numpy, same chunk size -> jets/s;
- heptagon: ``JetDataset`` (split off, shuffle + bucketing on, JetClass/ParT-style inputs,
  128 particles) to padded float32 tensors -> jets/s and the ratio to the bare read;
- memory: process RSS sampled every batch; the peak in the first and the last tenth of
  the epoch (flat = bounded by the buffer, not the dataset);
- weaver-core 0.5.3 ``SimpleIterDataset`` with the same config translated to its format,
  num_workers 0 and 1, when ``weaver`` is importable (else skipped, with a message).

Results go to ``benchmarks/results/<name>.json`` (default ``loader``) with the command, git
commit and machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
from _common import write_results

from heptagon.data.config import DataConfig, load_config
from heptagon.data.io import expand_files, open_reader
from heptagon.data.loader import JetDataset, make_dataloader
from heptagon.data.preprocess import Preprocess
from heptagon.data.transform import Transform

LENGTH = 128
FEATURES = [
    ["part_pt_log", 1.7, 0.7],
    ["part_e_log", 2.0, 0.7],
    ["part_logptrel", -4.7, 0.7],
    ["part_logerel", -4.7, 0.7],
    ["part_deltaR", 0.2, 4.0],
    "part_charge",
    "part_isChargedHadron",
    "part_isNeutralHadron",
    "part_isPhoton",
    "part_isElectron",
    "part_isMuon",
    "part_d0",
    "part_d0err",
    "part_dz",
    "part_dzerr",
]
CONFIG: dict[str, Any] = {
    "inputs": {
        "pf_points": {"length": LENGTH, "vars": ["part_deta", "part_dphi"]},
        "pf_features": {"length": LENGTH, "vars": FEATURES},
        "pf_vectors": {
            "length": LENGTH,
            "vars": ["part_px", "part_py", "part_pz", "part_energy"],
        },
    },
    "labels": ["label_QCD", "label_Tbqq"],
    "observers": ["jet_pt", "jet_sdmass"],
}


def write_dataset(root: Path, jets: int, chunk: int, seed: int = 0) -> list[Path]:
    """JetClass-schema shards (two classes), 20-80 particles per jet, row groups of ``chunk``."""
    rng = np.random.default_rng(seed)
    files, per_file = [], max(chunk, jets // 4)
    for i, start in enumerate(range(0, jets, per_file)):
        n = min(per_file, jets - start)
        counts = rng.integers(20, 80, n)
        total = int(counts.sum())
        jet_pt = rng.uniform(500, 1000, n).astype(np.float32)
        jet_eta = rng.uniform(-2, 2, n).astype(np.float32)
        deta, dphi = rng.normal(0, 0.2, (2, total)).astype(np.float32)
        pt = rng.exponential(10, total).astype(np.float32) + 0.5
        eta = np.repeat(jet_eta, counts) + deta
        phi = dphi
        cols: dict[str, Any] = {
            "part_px": pt * np.cos(phi),
            "part_py": pt * np.sin(phi),
            "part_pz": pt * np.sinh(eta),
            "part_energy": pt * np.cosh(eta),
            "part_deta": deta,
            "part_dphi": dphi,
        }
        for name in [
            "part_charge",
            "part_isChargedHadron",
            "part_isNeutralHadron",
            "part_isPhoton",
            "part_isElectron",
            "part_isMuon",
            "part_d0val",
            "part_d0err",
            "part_dzval",
            "part_dzerr",
        ]:
            cols[name] = rng.normal(0, 0.1, total).astype(np.float32)
        out = {k: ak.unflatten(v, counts) for k, v in cols.items()}
        out |= {
            "jet_pt": jet_pt,
            "jet_eta": jet_eta,
            "jet_phi": np.zeros(n, np.float32),
            "jet_energy": np.asarray(ak.sum(out["part_energy"], axis=1), np.float32),
            "jet_sdmass": rng.uniform(0, 250, n).astype(np.float32),
            "jet_nparticles": counts.astype(np.float32),
            "label_QCD": np.full(n, i % 2 == 0),
            "label_Tbqq": np.full(n, i % 2 == 1),
            "event": np.arange(n, dtype=np.int64),
        }
        path = root / f"shard_{i:03d}.parquet"
        ak.to_parquet(ak.zip(out, depth_limit=1), path, row_group_size=chunk)
        files.append(path)
    return files


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bare_read(files: list[Path], branches: list[str]) -> tuple[int, float]:
    """Jets and seconds for pyarrow read_row_group of ``branches`` -> numpy."""
    jets, start = 0, time.perf_counter()
    for path in files:
        pf = pq.ParquetFile(path)
        for i in range(pf.metadata.num_row_groups):
            table = pf.read_row_group(i, columns=branches)
            for column in table.columns:
                array = column.combine_chunks()
                while hasattr(array, "flatten"):
                    array = array.flatten()
                array.to_numpy(zero_copy_only=False)
            jets += table.num_rows
    return jets, time.perf_counter() - start


def heptagon_read(
    files: list[Path], config: DataConfig, args: argparse.Namespace
) -> dict[str, Any]:
    """Jets/s and RSS over one epoch of the streaming loader."""
    ds = JetDataset(
        files,
        config,
        Preprocess.from_config(config),
        split=None,
        batch_size=args.batch_size,
        buffer_size=args.buffer,
        chunk_size=args.chunk_size,
    )
    rss: list[float] = []
    jets, slots, real = 0, 0, 0
    start = time.perf_counter()
    for batch in make_dataloader(ds, num_workers=0):
        jets += len(batch)
        mask = batch.masks["pf_features"]
        slots += mask.numel()
        real += int(mask.sum())
        rss.append(rss_mb())
    seconds = time.perf_counter() - start
    tenth = max(1, len(rss) // 10)
    return {
        "jets": jets,
        "seconds": seconds,
        "jets_per_s": jets / seconds,
        "padded_fraction": 1 - real / slots,
        "padded_fraction_fixed_length": 1 - real / (jets * LENGTH),
        "rss_mb_peak_first_tenth": max(rss[:tenth]),
        "rss_mb_peak_last_tenth": max(rss[-tenth:]),
    }


def weaver_read(files: list[Path], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """weaver-core 0.5.3 SimpleIterDataset on the same files and (translated) config."""
    try:
        import torch
        from weaver.utils.dataset import SimpleIterDataset
    except ImportError as err:
        return {"skipped": f"weaver-core not importable ({err}); pip install weaver-core==0.5.3"}
    import yaml

    weaver_config = {
        "treename": None,
        "selection": None,
        "new_variables": {
            "part_mask": "ak.ones_like(part_energy)",
            "part_pt": "np.hypot(part_px, part_py)",
            "part_pt_log": "np.log(part_pt)",
            "part_e_log": "np.log(part_energy)",
            "part_logptrel": "np.log(part_pt/jet_pt)",
            "part_logerel": "np.log(part_energy/jet_energy)",
            "part_deltaR": "np.hypot(part_deta, part_dphi)",
            "part_d0": "np.tanh(part_d0val)",
            "part_dz": "np.tanh(part_dzval)",
        },
        "preprocess": {"method": "manual", "data_fraction": 0.5},
        "inputs": {
            "pf_points": {"length": LENGTH, "vars": [["part_deta", None], ["part_dphi", None]]},
            "pf_features": {
                "length": LENGTH,
                "vars": [v if isinstance(v, list) else [v, None] for v in FEATURES],
            },
            "pf_vectors": {
                "length": LENGTH,
                "vars": [[v, None] for v in ("part_px", "part_py", "part_pz", "part_energy")],
            },
            "pf_mask": {"length": LENGTH, "vars": [["part_mask", None]]},
        },
        "labels": {"type": "simple", "value": ["label_QCD", "label_Tbqq"]},
        "observers": ["jet_pt", "jet_sdmass"],
        "weights": None,
    }
    path = workdir / "weaver.yaml"
    path.write_text(yaml.safe_dump(weaver_config))
    out = {}
    for workers in (0, 1):
        ds = SimpleIterDataset(
            {"data": [str(f) for f in files]},
            str(path),
            for_training=True,
            fetch_by_files=False,
        )
        loader = torch.utils.data.DataLoader(
            ds, batch_size=args.batch_size, num_workers=workers, drop_last=False
        )
        jets, start = 0, time.perf_counter()
        for _x, y, _z in loader:
            jets += len(next(iter(y.values())))
        seconds = time.perf_counter() - start
        out[f"num_workers_{workers}"] = {"jets": jets, "jets_per_s": jets / seconds}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=None, help="default: 10x --buffer")
    parser.add_argument("--buffer", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--name", default="loader", help="results/<name>.json")
    args = parser.parse_args()
    jets = args.jets or 10 * args.buffer
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        files = expand_files(workdir) if any(workdir.glob("*.parquet")) else []
        if sum(pq.ParquetFile(f).metadata.num_rows for f in files) != jets:
            for f in files:
                f.unlink()
            files = write_dataset(workdir, jets, args.chunk_size)
        config = load_config(CONFIG)
        with open_reader(files[0]) as reader:
            branches = Transform(config, None).branches(reader.branches)
        bare_read(files[:1], branches)  # warm the page cache
        n_bare, s_bare = bare_read(files, branches)
        ours = heptagon_read(files, config, args)
        weaver = weaver_read(files, args, workdir)
    bare = n_bare / s_bare
    result: dict[str, Any] = {
        "settings": {
            "jets": jets,
            "buffer": args.buffer,
            "batch_size": args.batch_size,
            "chunk_size": args.chunk_size,
            "length": LENGTH,
            "branches": branches,
        },
        "bare_read_jets_per_s": bare,
        "heptagon": ours,
        "ratio_to_bare_read": ours["jets_per_s"] / bare,
        "weaver": weaver,
    }
    if "skipped" not in weaver:
        result["ratio_to_weaver"] = {
            k: ours["jets_per_s"] / v["jets_per_s"] for k, v in weaver.items()
        }
    path = write_results(args.name, result)
    print(f"bare read      {bare:12.0f} jets/s")
    print(
        f"heptagon       {ours['jets_per_s']:12.0f} jets/s  "
        f"(ratio {result['ratio_to_bare_read']:.2f}; padded slots "
        f"{ours['padded_fraction']:.1%} vs {ours['padded_fraction_fixed_length']:.1%} fixed)"
    )
    print(
        f"RSS peak       first tenth {ours['rss_mb_peak_first_tenth']:.0f} MB, "
        f"last tenth {ours['rss_mb_peak_last_tenth']:.0f} MB ({jets} jets, buffer {args.buffer})"
    )
    if "skipped" in weaver:
        print(f"weaver-core    skipped: {weaver['skipped']}")
    else:
        for k, v in weaver.items():
            print(
                f"weaver {k}  {v['jets_per_s']:12.0f} jets/s  (heptagon / weaver "
                f"{result['ratio_to_weaver'][k]:.2f})"
            )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
