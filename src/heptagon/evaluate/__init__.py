"""heptagon.evaluate."""
