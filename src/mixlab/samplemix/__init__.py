"""SampleMix: per-document quality and diversity, sampling weights, and counts under a token budget.

`mixlab.samplemix.quality` (rubric, annotators, ordinal scorer), `.diversity` (k-means compactness ×
separation), `.sampler` (pure-numpy weights and budgeted counts), `.score` and `.sample` (the corpus passes behind
`mixlab score` and `mixlab sample`), `.scores_file` (scores.parquet: definition, reader, writer), `.plots`
(summary.png).
"""
