"""The benchmark harness behind ``nni-decouple bench``, split by job.

- :mod:`.harness`: method discovery, isolated worker processes, machine facts, table rendering;
- :mod:`.cost`: search cost (step time, memory) of every method next to NNI's ``DARTS()``;
- :mod:`.floor`: the compute floor (every candidate op's own forward + backward, summed);
- :mod:`.quality`: search quality (retrained accuracy of found cells against random cells);
- :mod:`.report`: ``benchmarks/RESULTS.md`` and its plots from the JSON results.

``python -m nni_decouple.bench JOB RESULT`` runs one isolated job (see :mod:`.__main__`).
"""
