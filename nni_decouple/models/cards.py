"""Model cards: what a backbone is, where it comes from, and its size (parameters and MACs).

Parameters are counted without the auxiliary head (as the papers count them). MACs are counted by
PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2; it counts convolutions
and matrix products, not pooling, batch norm, activations or additions), for one image at the
network's input size, in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .genotype import Genotype

MAC_COUNTER = "torch.utils.flop_counter.FlopCounterMode (PyTorch), MACs = FLOPs / 2"


def count_params(model: nn.Module) -> int:
    """Parameters without the auxiliary head."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("aux_head."))


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass of a ``(1, *input_size)`` image in eval mode."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_size))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def model_card(title: str, genotype: Genotype, rows: list[dict[str, Any]], *, about: dict[str, str],
               notes: Sequence[str] = ()) -> str:
    """Markdown card. ``rows``: one dict per timm model with ``name``, its network entry (``dataset``,
    ``stem``, ``channels``, ``layers``, ``num_classes``, ``input_size``), measured ``params``/``macs``
    and optionally ``published`` figures."""
    lines = [f"# {title}", ""]
    for key, value in about.items():
        if value:
            lines.append(f"- **{key}**: {value}")
    lines += ["", "| timm model | data | stem | channels | cells | classes | input | params (M) | MACs (M) "
              "| published params (M) | published MACs (M) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        pub = row.get("published", {})
        size = row["input_size"]
        lines.append(
            f"| `{row['name']}` | {row.get('dataset', '—')} | {row['stem']} | {row['channels']} | {row['layers']} "
            f"| {row['num_classes']} | {row.get('in_chans', 3)}x{size}x{size} | {_fmt(row['params'] / 1e6)} "
            f"| {_fmt(row['macs'] / 1e6, 0)} | {_fmt(pub.get('params_m'))} | {_fmt(pub.get('macs_m'), 0)} |"
        )
    lines += ["", "Parameters without the auxiliary head. MACs counted with " + MAC_COUNTER
              + ": convolutions and matrix products, one image, eval mode.", ""]
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")
    first = rows[0]["name"]
    lines += ["## Use", "", "```python", "import nni_decouple  # registers the nd_* models with timm", "import timm",
              "", f"model = timm.create_model({first!r})",
              f"backbone = timm.create_model({first!r}, features_only=True)  # one feature map per stride",
              "```", "", "## Genotype", "", "```", genotype.to_text(), "```", ""]
    return "\n".join(lines)
