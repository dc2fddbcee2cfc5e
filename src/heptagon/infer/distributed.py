"""``predict`` over a Dask cluster: one task per input file, the same outputs as local.

Every input is checked on the client first (:func:`~heptagon.infer.predict.plan_predictions`),
so a bad file stops the run before any task starts. Each task
(:func:`~heptagon.infer.predict.predict_file`, importable by the workers) opens the model
and one input and writes its output atomically, so the model file, the inputs and
``out_dir`` must be reachable under the same paths from the workers (a shared file system,
or a cluster on this machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from heptagon.data.io import expand_files
from heptagon.errors import ConfigError
from heptagon.infer.predict import (
    DEFAULT_BATCH_SIZE,
    plan_predictions,
    predict_file,
    progress_bar,
)
from heptagon.io import make_dir
from heptagon.publish.onnx import load_onnx

__all__ = ["predict_distributed"]


def predict_distributed(
    model_path: str | Path,
    files: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    scheduler: str,
    threads: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    observers: Sequence[str] = (),
    progress: bool = True,
    verify: bool = True,
    fmt: str = "parquet",
) -> list[Path]:
    """:func:`~heptagon.infer.predict.predict` with one task per file on the Dask cluster
    at ``scheduler`` (an address such as ``tcp://127.0.0.1:8786``); ``threads`` ONNX
    Runtime threads per task; ``verify``: check a bundle's ``SHA256SUMS`` (on the client
    and in each task). Returns the output paths in input order."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ConfigError(
            "a Dask scheduler needs: pip install 'heptagon[dask]'", key="scheduler"
        ) from None
    model = load_onnx(model_path, verify=verify)
    model_path = model.path.resolve()
    jobs = plan_predictions(model, expand_files(files), Path(out_dir).resolve(), observers, fmt)
    make_dir(Path(out_dir).resolve())
    with (
        Client(scheduler) as client,
        progress_bar(sum(job.entries for job in jobs), progress) as advance,
    ):
        futures = {
            client.submit(
                predict_file,
                model_path,
                job.source.resolve(),
                job.output,
                observers=tuple(observers),
                threads=threads,
                batch_size=batch_size,
                verify=verify,
                pure=False,
            ): job
            for job in jobs
        }
        for future in as_completed(futures):
            future.result()  # re-raises a task's error here
            advance(futures[future].entries)
    return [job.output for job in jobs]
