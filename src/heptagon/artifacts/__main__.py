"""``python -m heptagon.artifacts DIR``: write the artifacts' JSON Schemas into DIR."""

from __future__ import annotations

import sys

from heptagon.artifacts.schemas import write_schemas

if len(sys.argv) != 2:
    sys.exit("usage: python -m heptagon.artifacts DIR")
for path in write_schemas(sys.argv[1]):
    print(path)
