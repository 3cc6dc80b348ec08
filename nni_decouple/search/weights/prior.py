"""Axis "op weights": softmax with a fixed prior, "more attention to important operations".

The eDARTS poster contrasts DARTS' supernet, "with equal attention to all operations at each
edge", with eDARTS' "fixed search path with more attention to important operations", and
concludes that separable convolutions make the best cells and 3x3 kernels beat 5x5. It does not
say how the attention is given. Our reading: a fixed, non-learned log-prior ``b[k]`` per op,

    w[e, k] = softmax(alpha[e] + b)[k],

so that from the first step the supernet mixes important ops with more weight (``b = 0`` is
DARTS). The prior stays in the weights used for derivation, as a prior should. The fixed search
path is the other half, :mod:`..topology.path`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...errors import ConfigError
from ...models.ops import OPS
from ...spaces.cell import CellSpec
from ..graph import CellGraph
from . import OpWeights, SoftmaxWeights, register_weights

#: Named priors. ``sep`` follows the poster's conclusions: separable convs first, 3x3 before 5x5.
ATTENTION_PRESETS: dict[str, dict[str, float]] = {
    "none": {},
    "sep": {"sep_conv_3x3": 1.0, "sep_conv_5x5": 0.5},
}


def parse_attention(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """``None``/``'none'``, a preset name, ``'op=bias,op=bias'`` or a mapping -> ``{op: bias}``."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        if spec in ATTENTION_PRESETS:
            return dict(ATTENTION_PRESETS[spec])
        prior: dict[str, float] = {}
        for item in (s.strip() for s in spec.split(",") if s.strip()):
            name, sep, value = item.partition("=")
            try:
                prior[name.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise ConfigError(f"--attention {spec!r}: expected a preset ({', '.join(ATTENTION_PRESETS)}) or "
                                  f"op=bias pairs such as 'sep_conv_3x3=1,sep_conv_5x5=0.5'")
        spec = prior
    unknown = [name for name in spec if name not in OPS]
    if unknown:
        raise ConfigError(f"--attention names unknown op {unknown[0]!r}: known ops are {', '.join(sorted(OPS))}")
    return {name: float(bias) for name, bias in spec.items() if float(bias) != 0.0}


class PriorSoftmaxWeights(SoftmaxWeights):
    """``softmax(alpha[e] + b)``: DARTS' op weights shifted by a fixed log-prior ``b`` per op.

    Ops of the prior that the space does not have are ignored, so one prior serves every op set
    (e.g. SS1..SS8).
    """

    def __init__(self, graph: CellGraph, op_names: tuple[str, ...], prior: Mapping[str, float] | None = None,
                 init_scale: float = 1e-3) -> None:
        super().__init__(graph, op_names, init_scale)
        prior = parse_attention(dict(prior or {}))
        self.register_buffer("prior", torch.tensor([prior.get(name, 0.0) for name in op_names]))

    def forward(self) -> torch.Tensor:
        return torch.softmax(self.alpha + self.prior, dim=-1)


@register_weights("softmax_prior")
def _softmax_prior(graph: CellGraph, spec: CellSpec, label: str, memo: dict[str, Any], **options: Any) -> OpWeights:
    return PriorSoftmaxWeights(graph, spec.op_names, **options)
