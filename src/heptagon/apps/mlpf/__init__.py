"""Machine-learned particle flow (``heptagon mlpf``): event reconstruction from detector
elements (:mod:`heptagon.generate.elements`) with the MLPF graph network
(:mod:`heptagon.models.mlpf`), against the rule-based baseline of :mod:`.pf`; metrics in
:mod:`.metrics`, the workflow (generate, train, evaluate) in :mod:`.run`."""
