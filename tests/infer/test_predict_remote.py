"""``heptagon predict`` on files named by URL (a local HTTP server with byte ranges) writes
the same scores as on the local files, named after the URL's file."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from rangeserver import serve

from heptagon.infer.predict import predict


def test_predict_on_urls_scores_as_on_local_files(
    tmp_path: Path, top_qcd_sample: Path, onnx_model: Path
) -> None:
    files = sorted((top_qcd_sample / "shards").glob("*.parquet"))[:2]
    local = predict(onnx_model, files, tmp_path / "local", progress=False)
    with serve(top_qcd_sample / "shards") as server:
        urls = [f"{server.url}/{f.name}" for f in files]
        remote = predict(onnx_model, urls, tmp_path / "remote", progress=False)
    assert [p.name for p in remote] == [f.name for f in files]
    for r, c in zip(remote, local, strict=True):
        assert pq.read_table(r).equals(pq.read_table(c))
