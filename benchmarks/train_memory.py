"""Memory of a CPU training with and without oneDNN's kernel cache (issue 23).

    python benchmarks/train_memory.py [--data /tmp/train-memory/sample] [--jets 5000]
                                      [--config configs/top_part_lite_aug.yaml]
                                      [--epochs 6] [--out /tmp/train-memory]

What runs: ``heptagon train CONFIG --data DATA`` (``--epochs`` epochs, early stopping off)
twice, each in its own process, one after the other: once with oneDNN's kernel cache at
its default capacity (``ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024`` set by hand, which the
command leaves as it is) and once as the command runs it (the cache off:
:func:`heptagon.cpu.uncache_kernels`). ``DATA``: a ``top-vs-qcd`` sample, made with
``--jets`` per class (seed 7) when it does not exist. Both runs keep freed memory in the
heap as ``heptagon train`` does on the CPU.

Printed and written to ``benchmarks/results/train_memory.json``: per run the peak resident
memory of the training process (``wait4``'s ``ru_maxrss``), the wall time of each epoch
(the run's ``history.jsonl``) and the training loss per epoch, which must be the same for
both (the cache changes which kernels are kept, not what they compute); the ratios of
peak memory and time, cache off over cache on; the CNN's milliseconds per step and their
ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import write_results

from heptagon.generate.run import GenerateOptions, generate

CONFIGS = Path(__file__).resolve().parent.parent / "src" / "heptagon" / "configs"
#: the kernel cache's capacity in each run (None: as ``heptagon train`` sets it, off)
RUNS: dict[str, str | None] = {"cache_on": "1024", "cache_off": None}


#: the fixed-shape CNN step, timed in a child process (argv: the batch size)
FIXED_STEP = """
import statistics, sys, time
import torch
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv1d(16, 32, 3, padding=1), torch.nn.ReLU(),
    torch.nn.Conv1d(32, 32, 3, padding=1), torch.nn.ReLU(),
    torch.nn.Flatten(), torch.nn.Linear(32 * 64, 4))
optimizer = torch.optim.AdamW(net.parameters())
batch = int(sys.argv[1])
x, y = torch.randn(batch, 16, 64), torch.randint(0, 4, (batch,))
times = []
for i in range(320):
    start = time.perf_counter()
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    optimizer.step()
    times.append(time.perf_counter() - start)
print(statistics.median(times[20:]) * 1e3)
"""


def fixed_step_ms(batch: int, cache: str) -> float:
    """Milliseconds per training step of the fixed-shape CNN with the cache's capacity."""
    env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": cache}
    command = [sys.executable, "-c", FIXED_STEP, str(batch)]
    return float(
        subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    )


def train_run(config: Path, data: Path, run: Path, epochs: int, cache: str | None) -> dict:
    """Train in a child process; its peak RSS, wall time and per-epoch history."""
    shutil.rmtree(run, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if cache is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = cache
    command = [
        sys.executable, "-c", "from heptagon.cli import main; main()",
        "train", str(config), "--data", str(data), "--out", str(run),
        "--set", f"train.epochs={epochs}", "--set", "train.patience=null",
    ]  # fmt: skip
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if child.returncode != 0:
        raise SystemExit(f"heptagon train exited with {child.returncode} ({run})")
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    epoch_s = [
        h["wall_s"] - (history[i - 1]["wall_s"] if i else 0.0) for i, h in enumerate(history)
    ]
    return {
        "oneDNN_cache_capacity": cache or "0 (heptagon.cpu.uncache_kernels)",
        "peak_rss_gb": usage.ru_maxrss / 1024**2,  # kB on Linux
        "wall_s": wall,
        "epoch_s": epoch_s,
        "train_loss": [h["train_loss"] for h in history],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a top-vs-qcd dataset dir")
    parser.add_argument("--jets", type=int, default=5000, help="jets per class if made")
    parser.add_argument("--config", type=Path, default=CONFIGS / "top_part_lite_aug.yaml")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("/tmp/train-memory"))
    args = parser.parse_args()

    data = args.data or args.out / f"sample-{args.jets}"
    if not (data / "manifest.json").exists():
        generate(GenerateOptions(sample="top-vs-qcd", jets=args.jets, seed=7, out=data))
    runs: dict[str, Any] = {}
    for name, cache in RUNS.items():
        runs[name] = train_run(args.config, data, args.out / name, args.epochs, cache)
        print(name, json.dumps(runs[name]), flush=True)
    on, off = runs["cache_on"], runs["cache_off"]
    figures = {
        "config": args.config.resolve().relative_to(CONFIGS.parent.parent.parent).as_posix(),
        "data": str(data),
        "epochs": args.epochs,
        "runs": runs,
        "same_training_loss": on["train_loss"] == off["train_loss"],
        "peak_rss_off_over_on": off["peak_rss_gb"] / on["peak_rss_gb"],
        "time_off_over_on": sum(off["epoch_s"]) / sum(on["epoch_s"]),
    }
    print(
        f"peak RSS: cache on {on['peak_rss_gb']:.2f} GB, off {off['peak_rss_gb']:.2f} GB "
        f"(x{figures['peak_rss_off_over_on']:.2f}); epochs: on {sum(on['epoch_s']):.0f} s, "
        f"off {sum(off['epoch_s']):.0f} s (x{figures['time_off_over_on']:.2f}); "
        f"same training loss: {figures['same_training_loss']}"
    )
    fixed = {}
    for batch in (32, 256):
        on_ms, off_ms = fixed_step_ms(batch, "1024"), fixed_step_ms(batch, "0")
        fixed[f"batch_{batch}"] = {"cache_on_ms": on_ms, "cache_off_ms": off_ms}
        print(f"fixed-shape CNN, batch {batch}: {on_ms:.2f} ms on, {off_ms:.2f} ms off")
    figures["fixed_shape_cnn_step"] = fixed
    print(f"written: {write_results('train_memory', figures)}")


if __name__ == "__main__":
    main()
