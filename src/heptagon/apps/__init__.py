"""heptagon.apps."""
