"""NNI's Proxyless on a cell: every op built for the input it reads.

NNI builds a :class:`~nni.nas.nn.pytorch.Cell` as one ``LayerChoice`` per (node, op slot) fed by an
``InputChoice``; the op factory is called with ``input_index=None`` there because the input is not
chosen yet. In a reduction cell the ops that read a cell input need stride 2 and those that read an
intermediate node stride 1, so no single op fits. NNI's other strategies never run those ops: a fixed
cell is rebuilt with the chosen input (``Cell.freeze``), and DARTS/GumbelDARTS
(``DifferentiableMixedCell``) and RandomOneShot/ENAS (``PathSamplingCell``) replace the cell with a
supernet cell that calls the factory once per input. NNI's ``Proxyless`` has no cell supermodule: it
turns the ``LayerChoice``/``InputChoice`` it finds into its mixed layer and input, so with a reduction
cell an op reading an intermediate node downsamples twice and the node sum fails (``stack expects each
tensor to be equal size``). NNI's own DARTS hub space (``nni.nas.hub.pytorch.nasnet``) builds its
ops the same way (stride 2 when ``input_index is None``) and fails the same way.

:class:`ProxylessMixedCell` is the missing piece: for each (node, slot) a ``ProxylessMixedInput``
samples the input and one ``ProxylessMixedLayer`` per possible input (ops built by the cell's factory
with that input index, all sharing the slot's alpha) runs on it. The sampling and the alpha gradients
are NNI's own (``_ProxylessFunction``); one thing differs: NNI puts the input's binary gate on the
input tensor, which needs every candidate input to have one shape, and a reduction cell's cell inputs
are twice the size of its nodes, so here the gate sits on the op's output (the sampled op applied to
each candidate input). :class:`CellSpace` registers it
through NNI's ``extra_oneshot_hooks`` for ``Proxyless`` only.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from ..nni_noise import importing_nni

with importing_nni():
    from nni.mutable import label_scope
    from nni.nas.nn.pytorch import Cell
    from nni.nas.nn.pytorch.cell import create_cell_op_candidates, preprocess_cell_inputs
    from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule
    from nni.nas.oneshot.pytorch.supermodule.proxyless import (
        ProxylessMixedInput,
        ProxylessMixedLayer,
        _ProxylessFunction,
    )


def _op_on_input(layers: nn.ModuleList, index: int, *states: torch.Tensor) -> torch.Tensor:
    return layers[index](states[index])


class ProxylessMixedCell(BaseSuperNetModule):
    """A cell for NNI's Proxyless whose ops take the stride of the input they read.

    Labels (``{cell}/op_{node}_{k}``, ``{cell}/input_{node}_{k}``) and exports are those of NNI's cell,
    so ``Genotype.from_arch`` reads the result as from any other strategy.
    """

    def __init__(self, cell: Cell, memo: dict[str, Any], mutate_kwargs: dict[str, Any]) -> None:
        super().__init__()
        factory = cell.op_candidates_factory
        self.num_nodes, self.num_ops_per_node = cell.num_nodes, cell.num_ops_per_node
        self.num_predecessors, self.concat_dim = cell.num_predecessors, cell.concat_dim
        self.preprocessor, self.postprocessor = cell.preprocessor, cell.postprocessor
        self.cell_label = cell.label
        softmax = mutate_kwargs.get("softmax", nn.Softmax(-1))
        self.inputs = nn.ModuleList()
        self.ops = nn.ModuleList()  # [node][slot][input] -> ProxylessMixedLayer
        with label_scope(cell.label):  # labels inside are "{cell}/..." as in NNI's cell
            for i in range(self.num_predecessors, self.num_predecessors + self.num_nodes):
                node_inputs, node_ops = nn.ModuleList(), nn.ModuleList()
                for k in range(self.num_ops_per_node):
                    alpha_in, alpha_op = memo[f"{cell.label}/input_{i}_{k}"], memo[f"{cell.label}/op_{i}_{k}"]
                    node_inputs.append(ProxylessMixedInput(i, 1, alpha_in, softmax, f"input_{i}_{k}"))
                    node_ops.append(nn.ModuleList(
                        ProxylessMixedLayer(create_cell_op_candidates(factory, i, k, j)[0], alpha_op, softmax,
                                            f"op_{i}_{k}")
                        for j in range(i)))
                self.inputs.append(node_inputs)
                self.ops.append(node_ops)

    # The mixed inputs and layers inside sample and export themselves (they are supernet modules too).
    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}

    def forward(self, *inputs: list[torch.Tensor] | torch.Tensor) -> Any:
        processed = preprocess_cell_inputs(self.num_predecessors, *inputs)
        states: list[torch.Tensor] = self.preprocessor(processed)
        for node_inputs, node_ops in zip(self.inputs, self.ops, strict=True):
            outs = []
            for choice, layers in zip(node_inputs, node_ops, strict=True):
                j = choice._sampled[0]
                # The input's binary gate sits after the op (NNI's sits on the input tensor, which needs every
                # candidate input to have one shape; a reduction cell's do not): its gradient compares
                # the sampled op on each candidate input, all of one shape, with NNI's own estimator.
                out = _ProxylessFunction.apply(partial(_op_on_input, layers), j, len(states), choice._softmax,
                                               choice._arch_alpha, *states, layers[j](states[j]))
                outs.append(out)
            states.append(torch.stack(outs).sum(0))
        return self.postprocessor(torch.cat(states[self.num_predecessors:], self.concat_dim), processed)

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict[str, Any],
               mutate_kwargs: dict[str, Any]) -> ProxylessMixedCell | None:
        """NNI mutation hook: replace a factory-built ``Cell`` (merge ``all``); leave anything else."""
        if type(module) is Cell and module.op_candidates_factory is not None and module.merge_op == "all":
            return cls(module, memo, mutate_kwargs)
        return None
