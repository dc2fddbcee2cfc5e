"""Remote reading throughput: heptagon's loader on files over HTTP vs the same local files.

    python benchmarks/remote_io.py [--jets 20000] [--chunk-size 5000] [--repeat 3]
                                   [--workdir DIR] [--name remote_io]

Writes a JetClass-schema sample (``--jets`` jets, two classes, in two files per format:
Parquet with row groups of ``--chunk-size``, and the same jets as ROOT TTrees) and serves
its dir from a local HTTP server with byte ranges (tests/data/rangeserver.py) running in a
separate process (so the server does not share this process's GIL). Then, ``--repeat``
rounds, each measuring every contender back to back: ``JetDataset`` (the top-kinematic
config, 7 + 4 + 2 variables x 100 particles, split off, no shuffle, ``chunk_size``
``--chunk-size``, ``num_workers`` 0) over the local paths and over the URLs, for each
format -> jets/s and the ratio remote / local of the same round; the bytes the server sent
per round and the file sizes (what streaming transfers vs the whole file); the peak RSS.
Each figure is the median of the rounds (the machine may be shared: the rounds' ratios
are listed too); results go to ``benchmarks/results/<name>.json``
with the command, git commit and machine. The server is on the loopback interface: the
ratio measures the cost of the remote path (HTTP requests, fsspec / uproot sources), not
of a network.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "data"))

from jetfiles import make_jets, write_parquet, write_root  # noqa: E402
from rangeserver import serve  # noqa: E402

from heptagon.data.config import load_config  # noqa: E402
from heptagon.data.loader import JetDataset  # noqa: E402
from heptagon.data.preprocess import Preprocess  # noqa: E402

CONFIG = ROOT / "configs" / "data" / "top_kinematic.yaml"


def write_sample(root: Path, jets: int, chunk: int) -> dict[str, list[Path]]:
    """Two files per format, half the jets each (QCD, Tbqq)."""
    out: dict[str, list[Path]] = {"parquet": [], "root": []}
    for i, label in enumerate(("QCD", "Tbqq")):
        sample = make_jets(jets // 2, label, seed=i, n_max=100)
        out["parquet"].append(
            write_parquet(root / f"{label}.parquet", sample, row_group_size=chunk)
        )
        out["root"].append(write_root(root / f"{label}.root", sample))
    return out


def _server(root: Path, urls: Any, stop: Any, stats: Any) -> None:
    with serve(root) as served:
        urls.put(served.url)
        while not stop.wait(0.05):
            stats.value = served.bytes_sent


def read_all(files: list[Any], chunk: int) -> tuple[int, float]:
    """Jets and seconds for one pass of the loader over ``files``."""
    config = load_config(CONFIG).model_copy(update={"observers": ["jet_pt"]})
    preprocess = Preprocess.from_config(config)
    start = time.perf_counter()
    dataset = JetDataset(
        files, config, preprocess, split=None, shuffle=False, batch_size=256,
        buffer_size=chunk, chunk_size=chunk,
    )  # fmt: skip
    jets = sum(len(batch) for batch in dataset)
    return jets, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jets", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--name", default="remote_io")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        files = write_sample(workdir, args.jets, args.chunk_size)
        ctx = mp.get_context("spawn")
        urls, stop, sent = ctx.Queue(), ctx.Event(), ctx.Value("q", 0)
        server = ctx.Process(target=_server, args=(workdir, urls, stop, sent), daemon=True)
        server.start()
        try:
            base = urls.get(timeout=60)
            rounds = []
            for _ in range(args.repeat):
                figures: dict[str, Any] = {}
                for fmt, paths in files.items():
                    jets, local_s = read_all(paths, args.chunk_size)
                    before = sent.value
                    remote_jets, remote_s = read_all(
                        [f"{base}/{p.name}" for p in paths], args.chunk_size
                    )
                    time.sleep(0.2)  # the server's counter is sampled every 50 ms
                    assert remote_jets == jets
                    figures[fmt] = {
                        "jets": jets,
                        "local_jets_per_s": jets / local_s,
                        "remote_jets_per_s": jets / remote_s,
                        "ratio_remote_to_local": local_s / remote_s,
                        "bytes_sent": sent.value - before,
                        "file_bytes": sum(p.stat().st_size for p in paths),
                    }
                rounds.append(figures)
        finally:
            stop.set()
            server.join(timeout=10)
    result: dict[str, Any] = {"jets": args.jets, "chunk_size": args.chunk_size}
    for fmt in files:
        per_round = [r[fmt] for r in rounds]
        result[fmt] = {
            "jets": per_round[0]["jets"],
            "file_bytes": per_round[0]["file_bytes"],
            "bytes_sent_per_pass": per_round[-1]["bytes_sent"],
            **{
                key: float(np.median([r[key] for r in per_round]))
                for key in ("local_jets_per_s", "remote_jets_per_s", "ratio_remote_to_local")
            },
            "ratios_all_rounds": [round(r["ratio_remote_to_local"], 3) for r in per_round],
        }
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    path = write_results(args.name, result)
    for fmt in files:
        r = result[fmt]
        print(
            f"{fmt}: local {r['local_jets_per_s']:.0f} jets/s, remote "
            f"{r['remote_jets_per_s']:.0f} jets/s, ratio {r['ratio_remote_to_local']:.2f} "
            f"(rounds {r['ratios_all_rounds']}), {r['bytes_sent_per_pass'] / 1e6:.1f} MB sent of "
            f"{r['file_bytes'] / 1e6:.1f} MB"
        )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
