"""heptagon.infer."""
