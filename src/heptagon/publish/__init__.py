"""heptagon.publish."""
