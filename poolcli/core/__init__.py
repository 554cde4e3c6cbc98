"""The pooling core: plans, kinds, per-axis reductions, window gathers, and the engine."""
