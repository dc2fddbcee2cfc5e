"""``heptagon sf``: data/simulation scale factors of a tagger (docs/scale-factors.md)."""
