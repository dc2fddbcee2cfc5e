"""Training speed of ParticleNet and ParT: heptagon vs weaver-core 0.5.3, same process.

    python benchmarks/train_speed.py [--data /tmp/speed-sample] [--reps 5] [--steps 4]
                                     [--threads 2] [--clock wall|cpu]
                                     [--models particlenet,part]
                                     [--e2e-split test] [--allocator retained|glibc]
                                     [--no-eval-attention] [--no-train]
                                     [--profile] [--compile] [--name train_speed]

What is timed: one training step = forward, cross-entropy, backward, AdamW step, batch 64,
``torch.set_num_threads(2)``, the same architecture and parameter count for both (checked).

- equal padding: synthetic jets (top-like four-vectors, the 7 kinematic inputs of
  ``configs/data/top_kinematic.yaml``) in 128 slots with exactly 128 or 50 real particles,
  the same tensors for both models. weaver-core trims padding to the longest jet only
  after its ``SequenceTrimmer`` warm-up (5 calls): the warm-up here is longer, and the
  trimmer's counter is checked before timing.
- end-to-end: one epoch over a split of generated jets (``heptagon generate top-vs-qcd
  --jets 2000 --seed 1 --out DIR``, made when ``--data`` does not exist), through
  heptagon's ``JetDataset``: heptagon with bucketing (batches of similar multiplicity),
  weaver-core with fixed padding (100 slots, as its loader gives; its model trims to the
  longest jet of each batch). Loader time is included for both.
- the allocator, the same for both models: ``retained`` (default; freed memory stays in
  the heap, as ``heptagon train`` runs, see :func:`heptagon.cpu.retain_freed_memory`) or glibc's
  defaults (``--allocator glibc``: blocks above its mmap threshold are fresh pages each time).
- the float32 matmul limit of this CPU (best of square ``mm``), measured in the same run,
  and each model's FLOPs per training jet (``FlopCounterMode``: matmuls, convolutions,
  attention) -> the achieved FLOP rate as a fraction of the limit.
- ParT's attention in evaluation (``--eval-attention``, on for ParT): heptagon's model in
  eval mode (no gradients, batch 64, the same synthetic jets) with its fused
  ``scaled_dot_product_attention`` against the written-out attention that training runs
  (and evaluation ran before): the same model, its attention blocks flagged as training
  (their dropouts stay off), alternating in the same process; the scores agree.
- where a training step's time goes (``--profile``): heptagon's step under
  ``torch.profiler`` (input shapes recorded), each op's own time by phase (forward,
  backward, optimizer), by the tensors it works on (the pair embedding's rows of real
  pairs, the attention's ``(batch x heads) x P x P`` tensors, the particles' tokens) and by
  kind (matmul, softmax, GELU, LayerNorm, BatchNorm, other elementwise); time in a phase
  outside any aten op (Python, NumPy's dropout masks) is its own entry.
- ``torch.compile`` (``--compile``): heptagon's training step with the model compiled
  (inductor, default mode) against the same model eager, from the same weights,
  alternating in one process; the first compiled step's time (compilation included) is
  recorded.

The cores may be shared: ``--clock cpu`` times with the process's CPU time instead of the
wall clock (meaningful with ``--threads 1``: with two threads, one waiting for the other
when that one is descheduled counts too). heptagon and weaver-core repetitions alternate,
so that load affects both alike; ratios are taken from the same run. Reported: best and
median jets/s over ``--reps`` repetitions of ``--steps`` steps, and the ratio of the
medians (and of the bests). Results go to ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from _common import add_allocator_option, apply_allocator, write_results
from torch import Tensor, nn
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from heptagon.data import Batch, JetDataset, compute_preprocess, load_config
from heptagon.models import build_model

ROOT = Path(__file__).resolve().parent.parent
DATA_CONFIG = ROOT / "configs" / "data" / "top_kinematic.yaml"
BATCH = 64
SLOTS = 128
INPUT_DIMS = {"pf_points": 2, "pf_features": 7, "pf_vectors": 4, "pf_mask": 1}
#: weaver-core's constructors for heptagon's defaults of the same names
WEAVER_PARTICLENET = {
    "conv_params": [(16, (64, 64, 64)), (16, (128, 128, 128)), (16, (256, 256, 256))],
    "fc_params": [(256, 0.1)],
    "use_fusion": False,
}
WEAVER_PART = {
    "pair_input_dim": 4,
    "use_pre_activation_pair": True,
    "embed_dims": (128, 512, 128),
    "pair_embed_dims": (64, 64, 64),
    "num_heads": 8,
    "num_layers": 8,
    "num_cls_layers": 2,
    "fc_params": (),
}

Step = Callable[[Mapping[str, Tensor], Tensor], None]


# ----------------------------------------------------------------------------- jets


def synthetic_jets(n_jets: int, n_real: int, seed: int) -> dict[str, Tensor]:
    """``n_jets`` top-like jets with exactly ``n_real`` particles in ``SLOTS`` slots.

    Particles: pT fractions from a steeply falling spectrum, (eta, phi) around the jet axis
    (3 prongs, spread 0.1-0.3); inputs as in ``top_kinematic.yaml`` (deta, dphi, log pT,
    log E, log pT/pT_jet, log E/E_jet, dR, standardised with its centres and scales),
    ``pf_points`` (deta, dphi), ``pf_vectors`` (px, py, pz, E); padded slots hold zeros.
    """
    g = torch.Generator().manual_seed(seed)
    shape = (n_jets, n_real)
    jet_pt = 550 + 100 * torch.rand(n_jets, 1, generator=g)
    jet_eta = 4 * torch.rand(n_jets, 1, generator=g) - 2
    jet_phi = (2 * torch.rand(n_jets, 1, generator=g) - 1) * math.pi
    frac = torch.rand(shape, generator=g).pow(4) + 1e-3
    pt = jet_pt * frac / frac.sum(1, keepdim=True)
    prong = torch.randint(0, 3, shape, generator=g)
    axis = torch.randn(n_jets, 3, 2, generator=g) * 0.25
    centre = axis.gather(1, prong.unsqueeze(2).expand(-1, -1, 2))
    spread = 0.1 + 0.2 * torch.rand(shape, generator=g).unsqueeze(2)
    d = centre + spread * torch.randn(n_jets, n_real, 2, generator=g)
    deta, dphi = d[..., 0], d[..., 1]
    eta, phi = jet_eta + deta, jet_phi + dphi
    energy = pt * torch.cosh(eta)
    vectors = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), energy])
    jet_e = energy.sum(1, keepdim=True)
    features = torch.stack(
        [
            deta,
            dphi,
            (pt.log() - 1.7) * 0.7,
            (energy.log() - 2.0) * 0.7,
            ((pt / jet_pt).log() + 4.7) * 0.7,
            ((energy / jet_e).log() + 4.7) * 0.7,
            (torch.sqrt(deta * deta + dphi * dphi) - 0.2) * 4.0,
        ]
    )

    def padded(x: Tensor) -> Tensor:
        out = x.new_zeros(n_jets, x.shape[0], SLOTS)
        out[:, :, :n_real] = x.permute(1, 0, 2)
        return out

    mask = torch.zeros(n_jets, 1, SLOTS)
    mask[:, :, :n_real] = 1.0
    return {
        "pf_points": padded(torch.stack([deta, dphi])),
        "pf_features": padded(features),
        "pf_vectors": padded(vectors),
        "pf_mask": mask,
    }


def generated_sample(path: Path) -> Path:
    """The generated top-vs-QCD sample at ``path`` (made once with the CLI)."""
    if not (path / "manifest.json").exists():
        command = ["generate", "top-vs-qcd", "--jets", "2000", "--seed", "1", "--out"]
        subprocess.run([sys.executable, "-m", "heptagon", *command, str(path)], check=True)
    return path


# ----------------------------------------------------------------------------- models


def heptagon_step(name: str, fused: bool) -> tuple[nn.Module, Step]:
    """heptagon's model ``name`` and its training step on a dict of input groups."""
    model = build_model(name, INPUT_DIMS, 2)
    assert isinstance(model, nn.Module)
    names = model.input_names  # type: ignore[attr-defined]
    return _with_optimizer(model, lambda m, t: m(*(t[n] for n in names)), fused)


def weaver_step(name: str, fused: bool) -> tuple[nn.Module, Step]:
    """weaver-core 0.5.3's model of the same architecture and its training step."""
    model: nn.Module
    if name == "particlenet":
        from weaver.nn.model.ParticleNet import ParticleNet

        model = ParticleNet(INPUT_DIMS["pf_features"], 2, **WEAVER_PARTICLENET)
        groups = ("pf_points", "pf_features", "pf_mask")
    else:
        from weaver.nn.model.ParticleTransformer import ParticleTransformer

        model = ParticleTransformer(INPUT_DIMS["pf_features"], 2, **WEAVER_PART)
        groups = ("pf_features", "pf_vectors", "pf_mask")
    return _with_optimizer(model, lambda m, t: m(*(t[g] for g in groups)), fused)


#: the phases of a training step, as ``record_function`` labels for ``--profile``
PHASES = ("forward", "backward", "optimizer")


def _with_optimizer(
    model: nn.Module, call: Callable[[nn.Module, Mapping[str, Tensor]], Tensor], fused: bool
) -> tuple[nn.Module, Step]:
    model.train()
    # torch's default AdamW (a loop over the parameters on CPU) is what both trainers use
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused or None)

    def step(inputs: Mapping[str, Tensor], labels: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with record_function("forward"):
            loss = F.cross_entropy(call(model, inputs), labels)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()

    return model, step


def n_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def skip_trimmer_warmup(model: nn.Module) -> None:
    """Let every ``SequenceTrimmer`` of a weaver-core model trim from the next call on, as
    it does after its warm-up calls (which run untrimmed, at full padding)."""
    trimmers = [m for m in model.modules() if type(m).__name__ == "SequenceTrimmer"]
    assert trimmers, "weaver-core model without a SequenceTrimmer"
    for trimmer in trimmers:
        trimmer._counter.fill_(trimmer.warmup_steps)  # type: ignore[operator]


def flops_per_jet(step: Step, inputs: Mapping[str, Tensor], labels: Tensor) -> float:
    """FLOPs of one training step (forward + backward) per jet."""
    counter = FlopCounterMode(display=False)
    with counter:
        step(inputs, labels)
    return counter.get_total_flops() / len(labels)


# ----------------------------------------------------------------------------- timing


#: ``--clock``: wall time, or the process's CPU time (with ``--threads 1`` on shared cores:
#: the time the other processes take is not counted, the time of this one's work is)
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def matmul_gflops(size: int = 1024, reps: int = 20) -> float:
    """Best float32 ``mm`` rate of this CPU (GFLOP/s) with the current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = math.inf
    for _ in range(reps):
        start = clock()
        torch.mm(a, b)
        best = min(best, clock() - start)
    return 2 * size**3 / best / 1e9


def timed(run: Callable[[], int]) -> float:
    """Jets per second of ``run`` (which returns the jets it processed), on :data:`clock`."""
    start = clock()
    jets = run()
    return jets / (clock() - start)


def alternate(runs: Mapping[str, Callable[[], int]], reps: int) -> dict[str, list[float]]:
    """jets/s of each run, ``reps`` times, the runs alternating (order flipped each rep)."""
    rates: dict[str, list[float]] = {key: [] for key in runs}
    keys = list(runs)
    for rep in range(reps):
        for key in keys if rep % 2 == 0 else keys[::-1]:
            rates[key].append(timed(runs[key]))
    return rates


def summary(rates: Iterable[float]) -> dict[str, float]:
    """Best and median of a list of rates."""
    values = list(rates)
    return {"best": max(values), "median": statistics.median(values)}


# ----------------------------------------------------------------------------- parts


def equal_padding(
    name: str, n_real: int, reps: int, steps: int, limit: float, fused: bool
) -> dict[str, Any]:
    """Both models on the same synthetic jets with ``n_real`` real particles of 128 slots."""
    torch.manual_seed(0)
    inputs = synthetic_jets(BATCH, n_real, seed=n_real)
    labels = torch.arange(BATCH) % 2
    models = {"heptagon": heptagon_step(name, fused), "weaver": weaver_step(name, fused)}
    params = {key: n_parameters(model) for key, (model, _) in models.items()}
    assert params["heptagon"] == params["weaver"], params
    skip_trimmer_warmup(models["weaver"][0])
    for _, step in models.values():
        for _ in range(2):
            step(inputs, labels)
    flops = {key: flops_per_jet(step, inputs, labels) for key, (_, step) in models.items()}

    def run(step: Step) -> Callable[[], int]:
        def go() -> int:
            for _ in range(steps):
                step(inputs, labels)
            return steps * BATCH

        return go

    rates = alternate({key: run(step) for key, (_, step) in models.items()}, reps)
    result: dict[str, Any] = {"parameters": params["heptagon"], "real": n_real, "slots": SLOTS}
    for key in models:
        result[key] = {
            "jets_per_s": summary(rates[key]),
            "gflop_per_jet": flops[key] / 1e9,
            "limit_fraction": flops[key] * statistics.median(rates[key]) / 1e9 / limit,
        }
    result["ratio"] = _ratios(rates)
    # heptagon's rate counted with weaver-core's FLOPs (the architecture's nominal work)
    result["heptagon"]["nominal_limit_fraction"] = (
        flops["weaver"] * statistics.median(rates["heptagon"]) / 1e9 / limit
    )
    return result


def eval_attention(n_real: int, reps: int, steps: int, limit: float) -> dict[str, Any]:
    """heptagon's ParT in evaluation on jets with ``n_real`` real particles of 128 slots:
    jets/s with the fused attention and with the written-out one (module docstring)."""
    from heptagon.models.part import AttentionBlock

    torch.manual_seed(0)
    inputs = synthetic_jets(BATCH, n_real, seed=n_real)
    model = build_model("part", INPUT_DIMS, 2)
    assert isinstance(model, nn.Module)
    model.eval()
    names = model.input_names  # type: ignore[attr-defined]
    blocks = [m for m in model.modules() if isinstance(m, AttentionBlock)]

    def forward(written_out: bool) -> Tensor:
        for block in blocks:
            block.training = written_out  # the block's own path; its dropouts stay in eval
        with torch.no_grad():
            return cast(Tensor, model(*(inputs[n] for n in names)))

    scores = {key: forward(key == "written_out") for key in ("fused", "written_out")}
    max_diff = float((scores["fused"] - scores["written_out"]).abs().max())
    counter = FlopCounterMode(display=False)
    with counter:
        forward(False)
    flops = counter.get_total_flops() / BATCH

    def run(written_out: bool) -> Callable[[], int]:
        def go() -> int:
            for _ in range(steps):
                forward(written_out)
            return steps * BATCH

        return go

    rates = alternate({"fused": run(False), "written_out": run(True)}, reps)
    result: dict[str, Any] = {"real": n_real, "slots": SLOTS, "max_abs_score_diff": max_diff}
    for key, values in rates.items():
        result[key] = {
            "jets_per_s": summary(values),
            "limit_fraction": flops * statistics.median(values) / 1e9 / limit,
        }
    result["speed_up"] = {
        stat: summary(rates["fused"])[stat] / summary(rates["written_out"])[stat]
        for stat in ("best", "median")
    }
    return result


def end_to_end(
    name: str, data: Path, split: str, reps: int, max_batches: int, fused: bool
) -> dict[str, Any]:
    """An epoch of ``split`` through ``JetDataset`` (its first ``max_batches`` batches if
    > 0, shuffled: a random subset of the jets): heptagon bucketed, weaver fixed."""
    config = load_config(DATA_CONFIG)
    preprocess = compute_preprocess(data, config)

    def dataset(bucketing: bool) -> JetDataset:
        return JetDataset(
            data, config, preprocess, split=split, batch_size=BATCH, bucketing=bucketing
        )

    torch.manual_seed(0)
    models = {"heptagon": heptagon_step(name, fused), "weaver": weaver_step(name, fused)}
    loaders = {"heptagon": dataset(True), "weaver": dataset(False)}
    slots: dict[str, list[int]] = {key: [] for key in models}

    def epoch(key: str, record: bool = False) -> int:
        _, step = models[key]
        jets = 0
        for i, batch in enumerate(loaders[key]):
            if i == max_batches > 0:
                break
            tensors = _inputs(batch)
            assert batch.label is not None
            step(tensors, batch.label)
            jets += len(batch)
            if record:
                slots[key].append(tensors["pf_mask"].shape[2])
        return jets

    skip_trimmer_warmup(models["weaver"][0])
    for key in models:
        epoch(key, record=True)
    rates = alternate({key: (lambda key=key: epoch(key)) for key in models}, reps)
    n_jets = len(slots["heptagon"]) * BATCH
    result: dict[str, Any] = {"split": split, "jets": n_jets}
    for key in models:
        result[key] = {
            "jets_per_s": summary(rates[key]),
            "mean_slots": statistics.fmean(slots[key]),
        }
    result["ratio"] = _ratios(rates)
    return result


def _inputs(batch: Batch) -> dict[str, Tensor]:
    tensors = batch.tensors()
    return {key: tensors[key] for key in INPUT_DIMS}


def _ratios(rates: Mapping[str, list[float]]) -> dict[str, float]:
    return {
        stat: summary(rates["heptagon"])[stat] / summary(rates["weaver"])[stat]
        for stat in ("best", "median")
    }


_MATMULS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"})
_KINDS = (
    ("softmax", "softmax"),
    ("gelu", "GELU"),
    ("layer_norm", "LayerNorm"),
    ("batch_norm", "BatchNorm"),
)


def op_kind(name: str) -> str:
    """The kind of an aten op (forward or backward): matmul, softmax, GELU, LayerNorm,
    BatchNorm, or other (elementwise, copies, reductions, indexing)."""
    if name in _MATMULS:
        return "matmul"
    return next((kind for key, kind in _KINDS if key in name), "other")


def op_tensors(shapes: Iterable[Sequence[int]], batch: int, n: int, heads: int) -> str:
    """What an op of ParT with ``n`` slots works on, from its input shapes: ``pair`` (the
    pair embedding's rows of pairs, up to ``batch * n * n``, or its dense ``(batch, n, n,
    heads)`` output), ``attention`` (particle attention's ``(batch * heads, n, n)`` or
    ``(batch, heads, n, n)``, class attention's ``(batch * heads, 1, 1 + n)``) or
    ``particle`` (everything else: tokens, parameters, the loss)."""
    attention = ((batch * heads, n, n), (batch, heads, n, n), (batch * heads, 1, 1 + n))
    shapes = [tuple(s) for s in shapes]
    if any(s in attention for s in shapes):
        return "attention"
    if any(len(s) >= 1 and s[0] > batch * n for s in shapes):
        return "pair"
    return "particle"


def breakdown(
    events: Iterable[FunctionEvent], batch: int, n: int, heads: int, steps: int
) -> list[dict[str, Any]]:
    """Seconds per step by (phase, tensors, kind) from the events of ``steps`` profiled
    training steps (:data:`PHASES` as ``record_function`` labels), largest first: each
    aten op's own time, and each phase's time outside aten ops as (phase, "-", "outside
    ops") (Python, NumPy); fractions of the total."""
    seconds: dict[tuple[str, str, str], float] = {}
    for event in events:
        if event.name in PHASES:
            key = (event.name, "-", "outside ops")
        else:
            phase = event.cpu_parent
            while phase is not None and phase.name not in PHASES:
                phase = phase.cpu_parent
            if phase is None or not event.name.startswith("aten::"):
                continue
            shapes = cast(list[list[int]], event.input_shapes)  # typed as one shape
            where = op_tensors(shapes, batch, n, heads)
            key = (phase.name, where, op_kind(event.name))
        seconds[key] = seconds.get(key, 0.0) + event.self_cpu_time_total / 1e6 / steps
    total = sum(seconds.values())
    return [
        {"phase": p, "tensors": w, "kind": k, "s_per_step": t, "fraction": t / total}
        for (p, w, k), t in sorted(seconds.items(), key=lambda item: -item[1])
    ]


def profile_step(name: str, n_real: int, steps: int) -> dict[str, Any]:
    """heptagon's training step of ``name`` on the synthetic jets with ``n_real`` real
    particles, under ``torch.profiler``: :func:`breakdown` and the step's wall time."""
    torch.manual_seed(0)
    inputs = synthetic_jets(BATCH, n_real, seed=n_real)
    labels = torch.arange(BATCH) % 2
    model, step = heptagon_step(name, False)
    for _ in range(2):
        step(inputs, labels)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step(inputs, labels)
        wall = (time.perf_counter() - start) / steps
    heads = getattr(getattr(model, "pair_embed", None), "heads", 1)
    rows = breakdown(prof.events(), BATCH, n_real, heads, steps)
    return {"real": n_real, "slots": SLOTS, "steps": steps, "wall_s_per_step": wall, "ops": rows}


def compiled_step(name: str, n_real: int, reps: int, steps: int) -> dict[str, Any]:
    """heptagon's training step of ``name`` eager and with ``torch.compile`` (same initial
    weights), alternating, on the synthetic jets with ``n_real`` real particles."""
    torch.manual_seed(0)
    inputs = synthetic_jets(BATCH, n_real, seed=n_real)
    labels = torch.arange(BATCH) % 2
    eager = build_model(name, INPUT_DIMS, 2)
    assert isinstance(eager, nn.Module)
    names = eager.input_names  # type: ignore[attr-defined]
    twin = copy.deepcopy(eager)
    compiled = cast(nn.Module, torch.compile(twin))

    def make(model: nn.Module, params: nn.Module) -> Callable[[], int]:
        model.train()
        optimizer = torch.optim.AdamW(params.parameters(), lr=1e-3)

        def go() -> int:
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(*(inputs[n] for n in names)), labels)
                loss.backward()
                optimizer.step()
            return steps * BATCH

        return go

    runs = {"eager": make(eager, eager), "compiled": make(compiled, twin)}
    first: dict[str, float] = {}
    for key, run in runs.items():
        start = time.perf_counter()
        run()
        first[key] = time.perf_counter() - start
    rates = alternate(runs, reps)
    result: dict[str, Any] = {"real": n_real, "slots": SLOTS, "first_step_s": first}
    for key, values in rates.items():
        result[key] = {"jets_per_s": summary(values)}
    result["speed_up"] = {
        stat: summary(rates["compiled"])[stat] / summary(rates["eager"])[stat]
        for stat in ("best", "median")
    }
    return result


def _print_profile(name: str, r: Mapping[str, Any], top: int = 15) -> None:
    print(f"{name} profile, {r['real']}/{SLOTS} real: {r['wall_s_per_step']:.2f} s per step")
    totals: dict[str, float] = {}
    for row in r["ops"]:
        totals[row["kind"]] = totals.get(row["kind"], 0.0) + row["fraction"]
    print("  by kind: " + ", ".join(f"{k} {v:.0%}" for k, v in totals.items()))
    for row in r["ops"][:top]:
        print(
            f"  {row['phase']:9s} {row['tensors']:10s} {row['kind']:12s} "
            f"{row['s_per_step']:6.3f} s  {row['fraction']:5.1%}"
        )


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print its table and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/speed-sample"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="cpu: the process's CPU time (for --threads 1 on cores that others load)",
    )
    parser.add_argument("--models", default="particlenet,part")
    parser.add_argument("--real", default="128,50")
    parser.add_argument("--e2e-split", default="test")
    parser.add_argument("--e2e-reps", type=int, default=3)
    parser.add_argument("--e2e-batches", type=int, default=0, help="0: whole split")
    parser.add_argument("--fused-adamw", action="store_true", help="for both models")
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument(
        "--eval-attention",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ParT: evaluation with the fused vs the written-out attention",
    )
    parser.add_argument("--no-train", action="store_true", help="skip the training parts")
    parser.add_argument(
        "--profile", action="store_true", help="heptagon's training step by op, kind, tensors"
    )
    parser.add_argument(
        "--compile", action="store_true", help="heptagon's step with torch.compile vs eager"
    )
    add_allocator_option(parser)
    parser.add_argument("--name", default="train_speed")
    args = parser.parse_args(argv)
    apply_allocator(args.allocator)
    torch.set_num_threads(args.threads)
    global clock
    clock = CLOCKS[args.clock]
    load = os.getloadavg()
    limit = matmul_gflops()
    print(f"float32 matmul limit: {limit:.0f} GFLOP/s on {args.threads} threads", flush=True)
    figures: dict[str, Any] = {
        "load_average": {"start": load},  # 1, 5, 15 minutes: other processes on the cores
        "threads": args.threads,
        "clock": args.clock,
        "batch": BATCH,
        "fused_adamw": args.fused_adamw,
        "allocator": args.allocator,
        "models": {},
    }
    for name in args.models.split(","):
        entry: dict[str, Any] = {"equal_padding": {}}
        for n_real in (int(r) for r in args.real.split(",")):
            if args.no_train:
                break
            r = equal_padding(name, n_real, args.reps, args.steps, limit, args.fused_adamw)
            entry["equal_padding"][str(n_real)] = r
            _print_row(name, f"equal, {n_real}/{SLOTS} real", r)
        if args.profile:
            entry["profile"] = {}
            for n_real in (int(r) for r in args.real.split(",")):
                r = profile_step(name, n_real, args.steps)
                entry["profile"][str(n_real)] = r
                _print_profile(name, r)
        if args.compile:
            entry["compile"] = {}
            for n_real in (int(r) for r in args.real.split(",")):
                r = compiled_step(name, n_real, args.reps, args.steps)
                entry["compile"][str(n_real)] = r
                c, e = r["compiled"]["jets_per_s"], r["eager"]["jets_per_s"]
                print(
                    f"{name} compiled, {n_real}/{SLOTS} real: {c['median']:.1f} jets/s vs "
                    f"eager {e['median']:.1f}; x{r['speed_up']['median']:.2f}; first step "
                    f"{r['first_step_s']['compiled']:.0f} s (eager "
                    f"{r['first_step_s']['eager']:.1f} s)",
                    flush=True,
                )
        if name == "part" and args.eval_attention:
            entry["eval_attention"] = {}
            for n_real in (int(r) for r in args.real.split(",")):
                r = eval_attention(n_real, args.reps, args.steps, limit)
                entry["eval_attention"][str(n_real)] = r
                f, w = r["fused"], r["written_out"]
                print(
                    f"part eval, {n_real}/{SLOTS} real: fused {f['jets_per_s']['median']:.1f} "
                    f"jets/s ({f['limit_fraction']:.0%} of limit), written-out "
                    f"{w['jets_per_s']['median']:.1f} ({w['limit_fraction']:.0%}); x"
                    f"{r['speed_up']['median']:.2f}; max score diff {r['max_abs_score_diff']:.1e}",
                    flush=True,
                )
        if not args.no_e2e and not args.no_train:
            data = generated_sample(args.data)
            r = end_to_end(
                name, data, args.e2e_split, args.e2e_reps, args.e2e_batches, args.fused_adamw
            )
            entry["end_to_end"] = r
            _print_row(name, f"end-to-end ({r['jets']} jets)", r)
        figures["models"][name] = entry
    figures["matmul_gflops"] = {"start": limit, "end": matmul_gflops()}
    figures["load_average"]["end"] = os.getloadavg()
    print(f"float32 matmul limit at the end: {figures['matmul_gflops']['end']:.0f} GFLOP/s")
    print("wrote", write_results(args.name, figures))


def _print_row(name: str, label: str, r: Mapping[str, Any]) -> None:
    h, w = r["heptagon"], r["weaver"]
    line = (
        f"{name:12s} {label:26s} heptagon {h['jets_per_s']['median']:7.1f} "
        f"(best {h['jets_per_s']['best']:7.1f})  weaver {w['jets_per_s']['median']:7.1f} "
        f"(best {w['jets_per_s']['best']:7.1f})  ratio {r['ratio']['median']:.2f} "
        f"(best {r['ratio']['best']:.2f})"
    )
    if "limit_fraction" in h:
        line += (
            f"  GFLOP/jet {h['gflop_per_jet']:.2f}/{w['gflop_per_jet']:.2f}"
            f"  of limit {h['limit_fraction']:.0%}/{w['limit_fraction']:.0%}"
            f" (nominal {h['nominal_limit_fraction']:.0%})"
        )
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
