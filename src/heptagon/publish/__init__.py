"""The export / publish stage: ONNX export checked against PyTorch, the publication
bundle (model card, HEPData submission, FAIR metadata, checksums) and its inspection.

Typical use::

    from heptagon.publish import export_run, publish

    report = export_run(run_dir)          # RUN/model.onnx (+ preprocess.json)
    publish(run_dir, out_dir)             # the bundle

and the ONNX helpers every stage reads exports with (:func:`read_onnx`,
:func:`load_onnx`, :func:`make_session`). Names are imported lazily
(:mod:`heptagon.lazy`), so ``import heptagon.publish`` does not import torch or onnx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heptagon.lazy import lazy_exports

if TYPE_CHECKING:
    from heptagon.publish.bundle import export_run, publish
    from heptagon.publish.card import render_model_card
    from heptagon.publish.fair import FairOptions, write_fair
    from heptagon.publish.hepdata import build_submission, validate_submission, write_submission
    from heptagon.publish.inspect import inspect_bundle
    from heptagon.publish.onnx import (
        ExportReport,
        OnnxModel,
        export_onnx,
        load_onnx,
        make_session,
        read_onnx,
    )
    from heptagon.publish.sums import verify_sums, write_sums

__all__ = [
    "ExportReport",
    "FairOptions",
    "OnnxModel",
    "build_submission",
    "export_onnx",
    "export_run",
    "inspect_bundle",
    "load_onnx",
    "make_session",
    "publish",
    "read_onnx",
    "render_model_card",
    "validate_submission",
    "verify_sums",
    "write_fair",
    "write_submission",
    "write_sums",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "bundle": ("export_run", "publish"),
        "card": ("render_model_card",),
        "fair": ("FairOptions", "write_fair"),
        "hepdata": ("build_submission", "validate_submission", "write_submission"),
        "inspect": ("inspect_bundle",),
        "onnx": (
            "ExportReport",
            "OnnxModel",
            "export_onnx",
            "load_onnx",
            "make_session",
            "read_onnx",
        ),
        "sums": ("verify_sums", "write_sums"),
    },
)
