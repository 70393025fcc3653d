"""SampleMix: per-document quality and diversity, sampling weights, and counts under a token budget.

`mixlab.samplemix.quality` (rubric, annotators, ordinal scorer), `.diversity` (k-means compactness ×
separation), `.sampler` (pure-numpy weights and budgeted counts), `.pipeline` (the corpus passes behind
`mixlab score` and `mixlab sample`).
"""
