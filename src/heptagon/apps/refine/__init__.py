"""FastSim -> FullSim refinement: ``heptagon refine train|apply`` (docs/refinement.md)."""
