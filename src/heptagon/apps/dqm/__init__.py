"""Data-quality monitoring (``heptagon dqm``): simulated runs and lumisections,
anomaly detection and the automatic certification of runs."""
