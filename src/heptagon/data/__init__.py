"""heptagon.data."""
