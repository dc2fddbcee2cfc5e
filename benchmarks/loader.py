"""Loader throughput and memory: files -> padded float32 tensors, vs a bare read and weaver-core.

    python benchmarks/loader.py [--jets 100000] [--buffer 10000] [--batch-size 256]
                                [--chunk-size 10000] [--repeat 3] [--data DIR_OR_GLOB]
                                [--no-weaver] [--weaver-jets 10000] [--workdir DIR]
                                [--allocator retained|glibc] [--name loader]

Writes a JetClass-schema Parquet dataset (``--jets`` jets, row groups of ``--chunk-size``;
``--jets`` defaults to 10x the shuffle buffer), or reads ``--data``, then measures in this
process, ``--repeat`` rounds, each round measuring every contender back to back so that
they share the machine's load of the moment (this matters on a shared machine):

- the allocator, the same for all (``--allocator``, see ``_common.add_allocator_option``):
  ``retained`` by default, as ``heptagon train`` reads, or glibc's defaults;
- bare read: pyarrow ``read_row_group`` of the branches the config needs (the same
  ``ParquetFile`` defaults and row groups the loader reads), every column converted to
  numpy -> jets/s;
- heptagon: ``JetDataset`` (split off, shuffle + bucketing on, JetClass/ParT-style inputs:
  21 variables x 128 particles) to padded float32 tensors, ``num_workers`` 0 and 1 ->
  jets/s and the ratio to the bare read of the same round; the same without bucketing;
- memory: process RSS sampled every batch; the peak in each tenth of the first round's
  epoch (flat = bounded by the buffer, not the dataset); padded-slot fraction with and
  without bucketing, from the masks;
- weaver-core 0.5.3 ``SimpleIterDataset`` with the same config translated to its YAML,
  the same batch size, its default fetch settings (``fetch_by_files=False``,
  ``fetch_step=0.01``), ``num_workers`` 0 and 1, over its first ``--weaver-jets`` jets
  (start-up included), when ``weaver`` is importable (else skipped, with the reason).
  Note: with the default fetch settings weaver reads 1% of each file per fetch, and on a
  Parquet file it reads every row group overlapping that range whole, so files of large
  row groups are read many times over: that, not its per-jet work, dominates here.

Each figure is the best of the rounds; every ratio is between figures of the same round
(the best round's ratio is reported, with all rounds' ratios beside it). Results go to
``benchmarks/results/<name>.json`` with the command, git commit and machine.
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
from _common import add_allocator_option, apply_allocator, write_results

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


def bare_read(files: list[Path], branches: list[str]) -> dict[str, Any]:
    """Jets, jets/s and CPU seconds (all threads) of pyarrow read_row_group of ``branches``
    -> numpy."""
    jets, start, cpu = 0, time.perf_counter(), time.process_time()
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
    seconds = time.perf_counter() - start
    return {"jets": jets, "jets_per_s": jets / seconds, "cpu_s": time.process_time() - cpu}


def heptagon_read(
    files: list[Path],
    config: DataConfig,
    args: argparse.Namespace,
    *,
    workers: int = 0,
    bucketing: bool = True,
) -> dict[str, Any]:
    """Jets/s, padded-slot fraction and RSS over one epoch of the streaming loader."""
    ds = JetDataset(
        files,
        config,
        Preprocess.from_config(config),
        split=None,
        batch_size=args.batch_size,
        buffer_size=args.buffer,
        chunk_size=args.chunk_size,
        bucketing=bucketing,
    )
    rss: list[float] = []
    jets, slots, real = 0, 0, 0
    start, cpu = time.perf_counter(), time.process_time()
    for batch in make_dataloader(ds, num_workers=workers):
        jets += len(batch)
        mask = batch.masks["pf_features"]
        slots += mask.numel()
        real += int(mask.sum())
        rss.append(rss_mb())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    tenths = [float(max(part)) for part in np.array_split(np.array(rss), 10) if len(part)]
    return {
        "jets": jets,
        "jets_per_s": jets / seconds,
        # this process's threads only: with workers the work is in other processes
        "cpu_s": cpu if workers == 0 else None,
        "padded_fraction": 1 - real / slots,
        "rss_mb_peak_by_tenth": tenths,
    }


def weaver_config(path: Path) -> None:
    """``CONFIG`` translated to weaver-core's data-config YAML, written to ``path``."""
    import yaml

    weaver = {
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
    path.write_text(yaml.safe_dump(weaver, sort_keys=False))  # new_variables in order


def weaver_read(
    files: list[Path], args: argparse.Namespace, config_path: Path, workers: int
) -> dict[str, Any]:
    """weaver-core 0.5.3 SimpleIterDataset (training mode: shuffled, its default fetch
    settings) on the same files, batched by a DataLoader of the same batch size; stops
    after ``--weaver-jets`` jets (it is slow), start-up included."""
    import torch
    from weaver.utils.dataset import SimpleIterDataset

    ds = SimpleIterDataset({"data": [str(f) for f in files]}, str(config_path), for_training=True)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.batch_size, num_workers=workers, drop_last=False
    )
    jets, start = 0, time.perf_counter()
    for _x, y, _z in loader:
        jets += len(next(iter(y.values())))
        if jets >= args.weaver_jets:
            break
    return {"jets": jets, "jets_per_s": jets / (time.perf_counter() - start)}


def weaver_available() -> str | None:
    """None if weaver-core can run here, else why not."""
    try:
        from weaver.utils.dataset import SimpleIterDataset  # noqa: F401
    except ImportError as err:
        return (
            f"weaver-core not importable ({err}); pip install --no-deps weaver-core==0.5.3 "
            "plus its run-time imports (numba, llvmlite, tqdm)"
        )
    return None


def dataset(args: argparse.Namespace, workdir: Path) -> list[Path]:
    """``--data``, or a synthetic dataset of ``--jets`` jets in ``workdir`` (reused)."""
    if args.data is not None:
        return expand_files(args.data)
    files = expand_files(workdir) if any(workdir.glob("*.parquet")) else []
    if sum(pq.ParquetFile(f).metadata.num_rows for f in files) != args.jets:
        for f in files:
            f.unlink()
        files = write_dataset(workdir, args.jets, args.chunk_size)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=None, help="default: 10x --buffer")
    parser.add_argument("--buffer", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are the best")
    parser.add_argument("--data", default=None, help="read these files instead (Parquet)")
    parser.add_argument("--no-weaver", action="store_true", help="skip weaver-core")
    parser.add_argument("--weaver-jets", type=int, default=10_000, help="jets timed per run")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--name", default="loader", help="results/<name>.json")
    add_allocator_option(parser)
    args = parser.parse_args()
    apply_allocator(args.allocator)
    args.jets = args.jets or 10 * args.buffer
    config = load_config(CONFIG)
    weaver_skipped = "--no-weaver" if args.no_weaver else weaver_available()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        files = dataset(args, workdir)
        with open_reader(files[0]) as reader:
            branches = Transform(config, None).branches(reader.branches)
        config_path = workdir / "weaver.yaml"
        weaver_config(config_path)
        bare_read(files[:1], branches)  # warm the page cache
        rounds: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            r: dict[str, Any] = {"bare_read": bare_read(files, branches)}
            for workers in (0, 1):
                r[f"heptagon_w{workers}"] = heptagon_read(files, config, args, workers=workers)
                if weaver_skipped is None:
                    r[f"weaver_w{workers}"] = weaver_read(files, args, config_path, workers)
            r["heptagon_fixed_length"] = heptagon_read(files, config, args, bucketing=False)
            rounds.append(r)
            print(" ".join(f"{k} {v['jets_per_s']:.0f}" for k, v in r.items()), flush=True)
    result = summarise(rounds, args, branches, weaver_skipped)
    path = write_results(args.name, result)
    report(result, path)


def summarise(
    rounds: list[dict[str, Any]],
    args: argparse.Namespace,
    branches: list[str],
    weaver_skipped: str | None,
) -> dict[str, Any]:
    """Best figures over the rounds and the ratios between figures of one round."""

    def best(key: str) -> dict[str, Any]:
        return max((r[key] for r in rounds), key=lambda v: v["jets_per_s"])

    def ratios(num: str, den: str) -> dict[str, Any]:
        each = [r[num]["jets_per_s"] / r[den]["jets_per_s"] for r in rounds]
        return {"best": max(each), "median": float(np.median(each)), "rounds": each}

    ours = best("heptagon_w0")
    result: dict[str, Any] = {
        "settings": {
            "jets": rounds[0]["bare_read"]["jets"],
            "buffer": args.buffer,
            "batch_size": args.batch_size,
            "chunk_size": args.chunk_size,
            "length": LENGTH,
            "n_input_variables": sum(len(g["vars"]) for g in CONFIG["inputs"].values()),
            "branches": branches,
            "repeat": args.repeat,
            "weaver_jets": args.weaver_jets,
            "allocator": args.allocator,
            "data": args.data or "synthetic (write_dataset)",
        },
        "jets_per_s": {k: best(k)["jets_per_s"] for k in rounds[0]},
        "ratio_to_bare_read": ratios("heptagon_w0", "bare_read"),
        # CPU seconds of all threads: what bounds the wall-time ratio once every core is busy
        "cpu_ratio_to_bare_read": {
            "median": float(
                np.median([r["bare_read"]["cpu_s"] / r["heptagon_w0"]["cpu_s"] for r in rounds])
            ),
            "bare_cpu_us_per_jet": 1e6 * best("bare_read")["cpu_s"] / best("bare_read")["jets"],
            "heptagon_cpu_us_per_jet": 1e6
            * best("heptagon_w0")["cpu_s"]
            / best("heptagon_w0")["jets"],
        },
        "padded_fraction": {
            "bucketing": ours["padded_fraction"],
            "fixed_length": best("heptagon_fixed_length")["padded_fraction"],
        },
        # the first round's: before weaver-core ran in this process
        "rss_mb_peak_by_tenth": rounds[0]["heptagon_w0"]["rss_mb_peak_by_tenth"],
        "dataset_over_buffer": rounds[0]["bare_read"]["jets"] / args.buffer,
        "rounds": rounds,
    }
    if weaver_skipped is None:
        result["ratio_to_weaver"] = {
            f"num_workers_{w}": ratios(f"heptagon_w{w}", f"weaver_w{w}") for w in (0, 1)
        }
    else:
        result["weaver_skipped"] = weaver_skipped
    return result


def report(result: dict[str, Any], path: Path) -> None:
    """Print the absolute figures with the ratios."""
    speed, bare = result["jets_per_s"], result["ratio_to_bare_read"]
    pad, rss = result["padded_fraction"], result["rss_mb_peak_by_tenth"]
    print(f"bare read           {speed['bare_read']:10.0f} jets/s")
    print(
        f"heptagon            {speed['heptagon_w0']:10.0f} jets/s  ratio to bare read "
        f"{bare['best']:.2f} (median {bare['median']:.2f}, rounds "
        f"{', '.join(f'{x:.2f}' for x in bare['rounds'])})"
    )
    cpu = result["cpu_ratio_to_bare_read"]
    print(
        f"CPU time per jet    bare read {cpu['bare_cpu_us_per_jet']:.1f} us, heptagon "
        f"{cpu['heptagon_cpu_us_per_jet']:.1f} us (all threads): CPU ratio {cpu['median']:.2f}, "
        "the bound on the wall ratio when the cores are saturated"
    )
    print(f"heptagon 1 worker   {speed['heptagon_w1']:10.0f} jets/s")
    print(f"heptagon fixed len  {speed['heptagon_fixed_length']:10.0f} jets/s")
    print(
        f"padded slots        {pad['bucketing']:.1%} with bucketing, "
        f"{pad['fixed_length']:.1%} without"
    )
    print(
        f"RSS peak by tenth   {' '.join(f'{x:.0f}' for x in rss)} MB "
        f"(dataset {result['dataset_over_buffer']:.0f}x the buffer)"
    )
    if "weaver_skipped" in result:
        print(f"weaver-core         skipped: {result['weaver_skipped']}")
    else:
        for w in (0, 1):
            ratio = result["ratio_to_weaver"][f"num_workers_{w}"]
            print(
                f"weaver {w} worker(s)  {speed[f'weaver_w{w}']:10.0f} jets/s  heptagon / weaver "
                f"{ratio['best']:.2f} (median {ratio['median']:.2f})"
            )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
