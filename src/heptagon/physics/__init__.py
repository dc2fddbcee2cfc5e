"""Shared physics foundations used by every stage: kinematics and metrics (pure functions)."""
