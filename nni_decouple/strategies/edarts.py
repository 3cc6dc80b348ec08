"""eDARTS (Siddiqui, Kyrkou, Theocharides, ICPR 2020): fast operation- and topology-aware search.

DARTS' first-order bilevel search made cheap: it searches on a seeded random subset of the
training data, updates the architecture only now and then (the poster's "epoch update"), and can
search the smaller split op sets SS1..SS8 (``--ops SS1``; :data:`nni_decouple.models.ops.OP_SETS`). Two
options give the poster's "fixed search path with more attention to important operations" as we
read it: ``path`` (search the ops along a fixed cell topology, :mod:`..search.topology.path`) and
``attention`` (a fixed log-prior on important ops, :mod:`..search.weights.prior`).

Axes: op weights softmax (or softmax with prior); topology none (or a fixed path); schedule
:class:`~nni_decouple.search.schedules.sparse.SparseBilevelModule`; derive top-2 (or the path).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Mapping
from typing import Any

from torch.utils.data import DataLoader, SequentialSampler

from ..data import EpochSeededSampler
from ..data import subset as subset_dataset
from ..errors import ConfigError
from ..search.schedules.sparse import LazyBatches, SparseBilevelModule, parse_step_scale, parse_update_every
from ..search.topology.path import PathSpec, parse_path
from ..search.weights.prior import parse_attention
from .base import DecoupledStrategy
from .methods.edarts import DEFAULT_ARCH_BATCHES, DEFAULT_STEP_SCALE, DEFAULT_SUBSET, DEFAULT_UPDATE_EVERY

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.evaluator.pytorch import DataLoader as TracedDataLoader



def subset_loader(loader: Any, fraction: float, seed: int = 0, balanced: bool = False) -> DataLoader:
    """The same loader over a seeded random ``fraction`` of its dataset (shuffled, seeded, unless
    it read its data in order)."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise ConfigError("EDARTS(subset=...) rebuilds plain DataLoaders (with a batch_size) over a subset; for other "
                          "loaders pass subset=None and subset the dataset yourself with nni_decouple.data.subset")
    dataset = subset_dataset(loader.dataset, fraction, seed, balanced)
    # An order that depends only on (seed, epoch), so that a resumed search reads what an uninterrupted one does.
    sampler = SequentialSampler(dataset) if isinstance(loader.sampler, SequentialSampler) \
        else EpochSeededSampler(len(dataset), seed)
    return TracedDataLoader(dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                            collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last)


def search_loaders(train: Any, val: Any, *, subset: float | None, seed: int, balanced: bool,
                   lazy_val: bool) -> dict[str, Any]:
    """NNI's ``{'train', 'val'}`` loaders over eDARTS' seeded subset (``None`` or 1: all the data),
    the validation one lazy (:class:`LazyBatches`: loaded only for the steps that update the architecture)."""
    if subset is not None and subset < 1.0:
        train = subset_loader(train, subset, seed, balanced)
        val = subset_loader(val, subset, seed + 1, balanced)
    return {"train": train, "val": LazyBatches(val) if lazy_val else val}


class EDARTS(DecoupledStrategy):
    """eDARTS as an NNI one-shot strategy; usable with ``NasExperiment`` like NNI's ``DARTS``.

    Parameters
    ----------
    subset
        Fraction of each loader's data to search on (seeded; ``None``: all). With a subset set here,
        :func:`~nni_decouple.runner.experiment.run_search` does not apply ``SearchConfig.subset`` again.
    balanced
        Equal share per class in the subset.
    seed
        Seed of the subset.
    arch_update_every
        ``'epoch'`` (one architecture step per epoch, on its last step) or ``k`` (every k weight
        steps; 1 is DARTS).
    path
        Fixed search path (``full``, ``inputs``, ``chain``, ``'0,1;0,2;...'``, lists, or a dict per
        cell type); ``None``/``full`` searches the topology as DARTS does.
    arch_step_scale
        Factor on the architecture learning rate of one update: ``'auto'`` (the weight steps per
        update, so that an update moves as far as the DARTS steps it replaces) or a number (1: one
        plain Adam step, before issue 20).
    arch_batches
        Validation batches whose mean gradient makes one update (lazy loaders fetch them then).
    attention
        Log-prior per op (``none``, ``sep``, ``'op=bias,...'`` or a dict).
    lazy_val
        Load a validation batch only for the steps that update the architecture.
    """

    schedule_cls = SparseBilevelModule

    def __init__(self, *, subset: float | None = DEFAULT_SUBSET, balanced: bool = False, seed: int = 0,
                 arch_update_every: int | str = DEFAULT_UPDATE_EVERY, arch_step_scale: float | str = DEFAULT_STEP_SCALE,
                 arch_batches: int = DEFAULT_ARCH_BATCHES, path: PathSpec | Mapping[str, PathSpec] = None,
                 attention: str | Mapping[str, float] | None = None, lazy_val: bool = True, **kwargs: Any) -> None:
        if subset is not None and not 0.0 < subset <= 1.0:
            raise ConfigError(f"--subset must be a fraction in (0, 1], got {subset}")
        prior = parse_attention(attention)
        fixed_path = path is not None and path != "full"
        schedule_options = {"arch_update_every": parse_update_every(arch_update_every),
                            "arch_step_scale": parse_step_scale(arch_step_scale), "arch_batches": arch_batches,
                            **kwargs.pop("schedule_options", {})}
        super().__init__(weights="softmax_prior" if prior else "softmax",
                         weights_options={"prior": prior} if prior else None,
                         topology="path" if fixed_path else "none",
                         topology_options={"path": path} if fixed_path else None,
                         derive="path" if fixed_path else "top2",
                         schedule_options=schedule_options, **kwargs)
        self.subset, self.balanced, self.seed = subset, balanced, seed
        self.arch_update_every = schedule_options["arch_update_every"]
        self.path, self.attention, self.lazy_val = path, prior, lazy_val

    def train_dataloader(self, train_dataloader_fn: Any, val_dataloader_fn: Any) -> dict[str, Any]:
        return search_loaders(train_dataloader_fn(), val_dataloader_fn(), subset=self.subset, seed=self.seed,
                              balanced=self.balanced, lazy_val=self.lazy_val)


# ----------------------------------------------------------------------------- CLI
def build(args: argparse.Namespace) -> EDARTS:
    parse_path(args.path, args.nodes)  # fail before the run directory is made
    # The strategy subsets its loaders (so that any harness building it from these options does);
    # run_search then leaves the data whole.
    subset = args.subset if args.subset is not None and args.subset < 1.0 else None
    return EDARTS(subset=subset, balanced=args.subset_balanced, seed=args.seed,
                  arch_update_every=args.arch_update_every, arch_step_scale=args.arch_step_scale,
                  arch_batches=args.arch_batches, path=args.path,
                  attention=args.attention, arc_learning_rate=args.arch_lr, gradient_clip_val=args.grad_clip)


def bench_variants(method: str) -> list[dict[str, Any]]:
    """Rows for ``nni-decouple bench``: the default against NNI's DARTS (issue target: end-to-end
    search time <= 0.2x), and each ingredient alone."""
    return [
        {"name": "default", "help": "subset 0.1 + one architecture update per epoch, scaled to the epoch's steps "
                                    "on 4 validation batches (the poster's eDARTS)",
         "targets": {"e2e": 0.2}},
        {"name": "unscaled", "help": "subset 0.1 + one plain architecture step per epoch (before issue 20)",
         "args": {"arch_step_scale": "1", "arch_batches": 1}},
        {"name": "subset-only", "help": "subset 0.1, architecture step every step (DARTS + data subset)",
         "args": {"arch_update_every": "1"}},
        {"name": "update-only", "help": "all data, one architecture step per epoch (DARTS + epoch update)",
         "args": {"subset": 1.0}},
        {"name": "focus", "help": "default + fixed path 'inputs' + attention 'sep'",
         "args": {"path": "inputs", "attention": "sep"}},
    ]
