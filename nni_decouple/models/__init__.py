"""The model side: genotype -> network, as timm models, with no NNI, pytorch-lightning or mmengine.

Everything an exported architecture needs at run time lives here, so a searched network runs
where only torch and timm are installed (``tests/models/test_layering.py`` walks the imports):

- :mod:`.genotype`: the architecture data type (what a search finds, what a network is built from);
- :mod:`.ops` and :mod:`.blocks`: candidate operations, stems and cell preprocessing;
- :mod:`.network`: the DARTS-family evaluation network (:class:`~.network.DartsNetwork`);
- :mod:`.timm_models`: the ``nd_*`` timm registrations (released presets and user exports);
- :mod:`.handcrafted`, :mod:`.deepen`: DARTOpti's handcrafted genotypes, D-DARTS' deepening;
- :mod:`.cards`: model cards (parameters, MACs).

The search side (:mod:`nni_decouple.spaces`, :mod:`nni_decouple.search`) imports from here, never
the other way round.
"""
