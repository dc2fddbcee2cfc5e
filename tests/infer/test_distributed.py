"""predict over a Dask cluster gives the same files as local predict."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from heptagon.errors import DataError
from heptagon.infer.distributed import predict_distributed
from heptagon.infer.predict import predict

distributed = pytest.importorskip("distributed")


def test_dask_equals_local(tmp_path: Path, top_qcd_sample: Path, onnx_model: Path) -> None:
    local = predict(onnx_model, top_qcd_sample, tmp_path / "local", observers=["jet_pt"],
                    progress=False)  # fmt: skip
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = predict_distributed(
            onnx_model, top_qcd_sample, tmp_path / "dask", scheduler=cluster.scheduler_address,
            observers=["jet_pt"], progress=False,
        )  # fmt: skip
        missing = top_qcd_sample / "shards" / "nothing.parquet"
        with pytest.raises(DataError, match=r"nothing\.parquet: no input files found"):
            predict_distributed(onnx_model, missing, tmp_path / "bad",
                                scheduler=cluster.scheduler_address, progress=False)  # fmt: skip
    assert [p.name for p in remote] == [p.name for p in local]
    for a, b in zip(local, remote, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    assert not (tmp_path / "bad").exists()
