"""heptagon.models."""
