"""Running a search or a retraining: the Lightning and NNI plumbing around the strategies.

- :mod:`.experiment`: one search end to end (data, space, evaluator, NNI experiment, genotype);
- :mod:`.evaluator`: the Lightning evaluator and trainer every search runs under;
- :mod:`.callbacks`: exact resume and the divergence guard;
- :mod:`.recorder`: the per-epoch architecture history (``arch_history.jsonl``);
- :mod:`.recipes`: YAML option files with ``_base_`` inheritance;
- :mod:`.retrain`: DARTS' evaluation recipe for a searched network.
"""
