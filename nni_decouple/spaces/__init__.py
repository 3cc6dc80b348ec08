"""NNI model spaces: the DARTS cell space, shared per cell type or per layer."""

from .cell import CellSpace, CellSpec

__all__ = ["CellSpace", "CellSpec"]
