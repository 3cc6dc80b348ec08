"""Searched and released architectures as data (genotype JSON + card), installed as nni_decouple.backbones."""
