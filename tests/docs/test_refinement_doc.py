"""docs/refinement.md runs: its bash block, in order, in a clean directory, through the
CLI app in this process. The two ``generate`` lines are checked to be the cached
``paired_samples`` fixture's options (parsed by the real command line) and linked to it
instead of generating again."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from doc_pages import fenced_blocks, run_command

import heptagon.generate.run
from heptagon.artifacts.manifest import JetManifest, load_manifest
from heptagon.generate.options import GenerateOptions
from heptagon.generate.run import Summary

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "refinement.md"


def test_the_example_runs(
    paired_samples: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = fenced_blocks(DOC.read_text(), "bash")
    fixture_opts = {
        chain: GenerateOptions(
            sample="uds", jets=80, seed=7, out=Path(f"uds-{chain}"), shard_size=40, radius=0.4,
            pt_min=30.0, pt_max=1000.0, eta_max=2.5, detector=chain,
        )
        for chain in ("full", "fast")
    }  # fmt: skip

    def linked(opts: GenerateOptions, *, show_progress: bool = True) -> Summary:
        assert opts == fixture_opts[opts.detector]
        opts.out.symlink_to(paired_samples[opts.detector])
        manifest = load_manifest(opts.out)
        assert isinstance(manifest, JetManifest)
        return Summary(opts.out, manifest, 1.0, 1.0, skipped_shards=len(manifest.files))

    monkeypatch.setattr(heptagon.generate.run, "generate", linked)
    lines = [line for line in block.splitlines() if line.strip()]
    for line in lines:
        run_command(line)
    assert {p.name for p in (tmp_path / "uds-full").iterdir()} >= {"manifest.json", "shards"}
    for shard in sorted((tmp_path / "uds-fast" / "shards").glob("*.parquet")):
        refined = pq.read_table(tmp_path / "uds-refined" / shard.name)
        assert refined.num_rows == pq.read_table(shard).num_rows
        assert {"jet_pt_refined", "jet_sdmass_refined"} <= set(refined.column_names)
