"""Run one search end to end: data, space, evaluator, NNI experiment, exported genotype.

This is what ``nni-decouple search METHOD`` does; :func:`run_search` is the same from Python.
A run directory holds ``config.json`` (the options, for ``--resume``), ``genotype.json``,
``arch_probs.json`` (final architecture weights and skip-connection counts), ``arch_history.jsonl``
(the architecture weights, schedule and derived cells after every epoch: :mod:`.recorder`), Lightning
checkpoints (``checkpoints/last.ckpt``), CSV logs (``logs/metrics.csv``) and TensorBoard logs.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback

from ..data import EpochSeededSampler, bilevel_split, build_datasets, subset
from ..errors import CheckpointError, ConfigError
from ..io import atomic_write_json, prepare_run_dir
from ..models.genotype import Genotype
from ..spaces import CellSpace
from .callbacks import ConfigStamp, DivergenceGuard, MemoryFormat, RNGStateCallback
from .config import SearchConfig
from .console import EpochConsole, quiet_libraries, wants_progress_bar
from .evaluator import build_evaluator, build_trainer
from .recorder import ArchitectureRecorder

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    from nni.nas.evaluator.pytorch import DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.experiment.config import NasExperimentConfig

_logger = logging.getLogger(__name__)

#: What a search writes into its run directory (``--force`` replaces these, and only these).
RUN_OUTPUTS = ("config.json", "genotype.json", "arch_probs.json", "arch_history.jsonl", "checkpoints", "logs",
               "tensorboard", "nni")


@dataclass
class SearchResult:
    genotype: Genotype
    arch: dict[str, Any]
    probs: dict[str, Any]
    out: Path | None
    seconds: float


def build_space(config: SearchConfig, num_classes: int, in_chans: int, stem: str = "cifar",
                defaults: dict[str, Any] | None = None) -> CellSpace:
    defaults = defaults or {}
    return CellSpace(ops=config.ops or defaults.get("ops", "darts"), channels=config.channels, layers=config.layers,
                     nodes=config.nodes, num_classes=num_classes, in_chans=in_chans,
                     sharing=config.sharing or defaults.get("sharing", "type"), stem=stem,  # type: ignore[arg-type]
                     reductions=defaults.get("reductions"))


def skip_counts(genotype: Genotype) -> dict[str, int]:
    """Skip connections per derived cell: the quantity DARTS is known to inflate."""
    return genotype.count("skip_connect")


class SkipConnectionLogger(Callback):
    """Log the skip connections of the currently derived cells after every epoch, for any method
    (metrics ``skip_connections/<cell label>`` and one log line), to watch DARTS' skip bias grow."""

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        with torch.no_grad():
            counts = skip_counts(Genotype.from_arch(pl_module.export()))
        for label, n in counts.items():
            pl_module.log(f"skip_connections/{label}", float(n), on_step=False, on_epoch=True)
        if trainer.global_rank == 0:
            _logger.info("epoch %d: skip connections %s", trainer.current_epoch, counts)


def is_rank_zero() -> bool:
    """Whether this process is DDP rank 0 (or not distributed). Lightning's launcher sets the
    ranks in the environment of the processes it starts."""
    return all(int(os.environ.get(name, "0")) == 0 for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))


#: Options a resume may change: the number of epochs (a resume may extend a run), and how the same
#: search is computed (the fast path gives the same function, docs/performance.md; the device).
RESUME_MAY_CHANGE = frozenset({"epochs", "fast", "device"})


def _changed(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Options (but :data:`RESUME_MAY_CHANGE`) that differ between two runs.

    An option (or method option) the saved run does not record at all was added by a later version
    of the package (e.g. DOTS' ``anneal``, ``precision``): it is not a difference, so that older runs
    still resume."""
    changed = []
    for k in current:
        old, new = saved.get(k), current[k]
        if k in RESUME_MAY_CHANGE or k not in saved:
            continue
        if k == "method_options" and isinstance(old, dict) and isinstance(new, dict):
            if set(old) - set(new) or any(old[o] != v for o, v in new.items() if o in old):
                changed.append(k)
        elif old != new:
            changed.append(k)
    return changed


def _check_resume(out: Path, config: SearchConfig) -> Path:
    """The checkpoint to resume from, after checking that it is this run's (same options) and readable."""
    saved_path = out / "config.json"
    ckpt = out / "checkpoints" / "last.ckpt"
    if saved_path.is_file() and not ckpt.is_file():
        raise CheckpointError(f"--resume: the run in {str(out)!r} stopped before its first checkpoint (written at the "
                              f"end of every epoch), so there is nothing to resume: start it again with --force")
    if not saved_path.is_file() or not ckpt.is_file():
        raise CheckpointError(f"{str(out)!r} has no config.json and checkpoints/last.ckpt to resume from: "
                              f"start a new run with another --out")
    current = json.loads(json.dumps(config.to_dict()))  # as stored: tuples become lists
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{str(saved_path)!r} is not readable JSON ({e}): restore it from the run's "
                              f"checkpoint or start a new run with another --out") from None
    diff = _changed(saved, current) if isinstance(saved, dict) else ["config.json is not a mapping"]
    if diff:
        raise CheckpointError(
            f"--resume: the run in {str(out)!r} used different options ({', '.join(diff)}); "
            f"resume with the same options (see its config.json) or start a new run"
        )
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises several types for a truncated or foreign file
        raise CheckpointError(f"--resume: {str(ckpt)!r} cannot be read ({type(e).__name__}): it is truncated or not "
                              f"a checkpoint; resume from a good copy of it or start a new run") from None
    stamp = state.get(ConfigStamp.KEY) if isinstance(state, dict) else None
    if not isinstance(stamp, dict) or "state_dict" not in state:
        raise CheckpointError(f"--resume: {str(ckpt)!r} was not written by 'nni-decouple search' (it records no "
                              f"search options): resume from this run's own checkpoint or start a new run")
    diff = _changed(stamp, current)
    if diff:
        raise CheckpointError(
            f"--resume: {str(ckpt)!r} is from another search ({', '.join(f'{k}={stamp.get(k)!r}' for k in diff)}) "
            f"than this run's config.json; put this run's own last.ckpt back or start a new run"
        )
    return ckpt


def run_search(config: SearchConfig, strategy: Any, out: str | Path | None = None, *, resume: bool = False,
               force: bool = False, progress_bar: bool = True, space_defaults: dict[str, Any] | None = None,
               callbacks: Sequence[Any] = (), announce: Any = None) -> SearchResult:
    """Search with ``strategy`` under ``config``; write the run to ``out`` (when given).

    With ``devices > 1`` Lightning's DDP re-runs the calling script once per extra rank; every
    rank searches with all-reduced gradients and exports the same genotype, and only rank 0
    writes files. ``announce(text)`` (e.g. ``print``) gets a line about what runs before the search: the
    method, the space, the data sizes after subsets and splits, the schedule. Without a terminal (or with
    ``progress_bar=False``) every epoch prints one line instead of the progress bar.
    """
    config.check()
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no GPU: use --device cpu")
    refusal = getattr(getattr(strategy, "schedule_cls", None), "ddp_refusal", None)
    if config.devices > 1 and refusal:
        raise ConfigError(refusal)
    torch.manual_seed(config.seed)
    train_set, _, info = build_datasets(config.dataset, config.data_root, config.train_limit, config.seed)
    # A strategy that subsets its own loaders (a non-None ``strategy.subset``, as eDARTS') gets all the data.
    if config.subset is not None and getattr(strategy, "subset", None) is None:
        train_set = subset(train_set, config.subset, config.seed, config.subset_balanced)
    weight_half, arch_half = bilevel_split(train_set, config.train_portion, config.seed)
    loader_kwargs = dict(batch_size=config.batch_size, num_workers=config.num_workers, drop_last=False)
    train_loader = DataLoader(weight_half, sampler=EpochSeededSampler(len(weight_half), config.seed), **loader_kwargs)
    val_loader = DataLoader(arch_half, sampler=EpochSeededSampler(len(arch_half), config.seed + 1), **loader_kwargs)
    space = build_space(config, info.num_classes, info.in_chans, info.stem, space_defaults)
    check_supernet(strategy, space)

    # Everything that can be wrong with the input (options, data, space, the supernet the strategy
    # builds from it) is checked above: only now is the run directory made, so that bad input leaves
    # nothing behind.
    if out is None:
        out_dir = None
    elif is_rank_zero():
        out_dir = prepare_run_dir(out, resume=resume, force=force, outputs=RUN_OUTPUTS)
    else:  # DDP ranks > 0 re-run this script after rank 0 has prepared the directory
        out_dir = Path(out)
    ckpt = _check_resume(out_dir, config) if (resume and out_dir is not None) else None

    checkpoints = out_dir / "checkpoints" if out_dir is not None else None
    recorder = [ArchitectureRecorder(out_dir)] if out_dir is not None else []
    bar = wants_progress_bar(progress_bar)
    if announce is not None and is_rank_zero():
        announce(describe_search(config, strategy, space, len(weight_half), len(arch_half), out_dir))
    if hasattr(strategy, "fast"):  # the package's strategies: the cells' fast forward
        strategy.fast = config.fast
    fast = [MemoryFormat()] if config.fast else []
    with quiet_libraries():
        trainer = build_trainer(out_dir, config.epochs, devices=config.devices, progress_bar=bar,
                                accelerator=config.device, precision=config.precision,
                                callbacks=[*fast, SkipConnectionLogger(), RNGStateCallback(),
                                           DivergenceGuard(checkpoints),
                                           ConfigStamp(json.loads(json.dumps(config.to_dict()))),
                                           EpochConsole(lines=not bar, total_epochs=config.epochs),
                                           *recorder, *callbacks])
    evaluator = build_evaluator(train_loader, val_loader, trainer, learning_rate=config.learning_rate,
                                learning_rate_min=config.learning_rate_min, weight_decay=config.weight_decay,
                                max_epochs=config.epochs)
    if ckpt is not None:
        evaluator.fit_kwargs["ckpt_path"] = str(ckpt)
    if out_dir is not None and is_rank_zero() and not resume:
        atomic_write_json(out_dir / "config.json", config.to_dict())

    started = time.perf_counter()
    with quiet_libraries():
        exp_config = NasExperimentConfig.default(space, evaluator, strategy)
        work = Path(out_dir / "nni") if out_dir is not None else Path(os.environ.get("TMPDIR", "/tmp")) / "nni-decouple"
        exp_config.experiment_working_directory = str(work)
        experiment = NasExperiment(space, evaluator, strategy, exp_config)
        _quiet_nni()
        experiment.run()
    seconds = time.perf_counter() - started

    module = strategy.oneshot_module
    with torch.no_grad():
        arch = module.export()
        probs = module.export_probs()
    meta = {"method": config.method, "dataset": config.dataset, "layers": config.layers,
            "channels": config.channels, "nodes": config.nodes, "seed": config.seed}
    # A strategy may add what the network needs from its search (e.g. Stretchable Cells' eval_layers).
    meta.update(getattr(strategy, "genotype_meta", lambda _config: {})(config))
    genotype = Genotype.from_arch(arch, meta=meta)
    if out_dir is not None and is_rank_zero():
        atomic_write_json(out_dir / "genotype.json", genotype.to_dict())
        atomic_write_json(out_dir / "arch_probs.json", {
            "method": config.method, "epochs": config.epochs, "search_seconds": round(seconds, 2),
            "skip_connections": skip_counts(genotype), "arch": arch, "probs": probs,
            # what ran, where config.json says "the method's default" (None)
            "space": {"ops": list(getattr(space, "op_names", ())), "sharing": getattr(space, "sharing", None)},
        })
    return SearchResult(genotype, arch, probs, out_dir, seconds)


def check_supernet(strategy: Any, space: Any) -> None:
    """Build the strategy's supernet once from a copy of ``space`` and throw it away, so that whatever the
    construction refuses (partial channels that do not divide the channels, a space the method cannot
    search, ...) is refused before the run directory is made. The random state is left as it was, so the
    search itself starts from the same parameters as without this check."""
    mutate = getattr(strategy, "mutate_model", None)
    if mutate is None:
        return
    with quiet_libraries(), torch.random.fork_rng(devices=[]):
        mutate(copy.deepcopy(space))


def describe_search(config: SearchConfig, strategy: Any, space: Any, weight_images: int, arch_images: int,
                    out: Path | None) -> str:
    """What a search runs, a line each: method and space, the data after subsets and splits, the epochs or the
    schedule's stage plan, the run directory."""
    ops = tuple(getattr(space, "op_names", ()))
    sharing = getattr(space, "sharing", config.sharing)
    cells = "one per layer" if sharing == "layer" else "shared by type"
    lines = [f"search {config.method}: {config.layers} cells ({cells}), {config.channels} channels, {config.nodes} "
             f"nodes, {len(ops)} ops ({', '.join(ops)})"]
    fraction = getattr(strategy, "subset", None)
    if fraction is not None and fraction < 1:  # the strategy subsets each half itself (eDARTS)
        def part(n: int) -> int:
            return max(1, int(round(fraction * n)))
        data = (f"{part(weight_images)} weight + {part(arch_images)} architecture images (subset {fraction:g} of "
                f"{weight_images} + {arch_images})")
        weight_images = part(weight_images)
    else:
        data = f"{weight_images} weight + {arch_images} architecture images"
    steps = -(-weight_images // config.batch_size)
    per_epoch = f"{steps} step per epoch" if steps == 1 else f"{steps} steps per epoch"
    lines.append(f"data {config.dataset}: {data}, batch {config.batch_size} ({per_epoch})")
    plan = strategy.describe(config.epochs) if hasattr(strategy, "describe") else []
    lines.extend(plan or [f"{config.epochs} epochs"])
    if out is not None:
        lines.append(f"run directory: {out}")
    return "\n".join(lines)


def _quiet_nni() -> None:
    """NNI logs a line per checkpoint and warns about training services the sequential engine
    does not use; keep the console to Lightning's progress bar and our summary."""
    for name in ("nni", "nni.nas", "nni.experiment", "nni.runtime"):
        logging.getLogger(name).setLevel(logging.ERROR)
