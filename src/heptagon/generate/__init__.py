"""heptagon.generate."""
