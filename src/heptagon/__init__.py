"""heptagon: machine learning for collider physics.

generate -> data -> train -> evaluate -> export / publish -> predict
"""

from heptagon.errors import (
    ConfigError,
    DataError,
    ExportError,
    HeptagonError,
    ModelError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "HeptagonError",
    "ModelError",
    "__version__",
]
