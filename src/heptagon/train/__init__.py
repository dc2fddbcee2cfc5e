"""heptagon.train."""
