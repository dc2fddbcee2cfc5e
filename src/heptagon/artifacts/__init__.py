"""Typed artifacts: one pydantic model per JSON file that heptagon writes and later reads,
each with a ``schema_version`` (``docs/schemas/`` holds their JSON Schemas, written by
``python -m heptagon.artifacts docs/schemas``).

This package imports nothing from the stages, so every stage can use it."""

from __future__ import annotations

from heptagon.artifacts.base import Artifact, Record

__all__ = ["Artifact", "Record"]
