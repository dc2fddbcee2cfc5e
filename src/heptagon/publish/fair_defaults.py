"""The defaults of a bundle's FAIR metadata (:mod:`heptagon.publish.fair`), apart so that
the command line can show them without importing the metadata models."""

from __future__ import annotations

__all__ = ["DEFAULT_AUTHOR", "DEFAULT_LICENSE", "DEFAULT_VERSION"]

#: the licence of a published model unless the user chooses one (SPDX identifier):
#: reuse with attribution, the usual licence of a published model's weights
DEFAULT_LICENSE = "CC-BY-4.0"
#: the model version of a first publication
DEFAULT_VERSION = "1.0.0"
#: a placeholder author, to be replaced with ``--author``
DEFAULT_AUTHOR = "heptagon user"
