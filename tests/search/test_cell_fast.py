"""The fast path is the same search: with a fixed seed, ``--fast`` and ``--no-fast`` derive the same
genotype and the first architecture step's gradients agree within float tolerance, for every method
(and a composition of other axes); mixed precision runs on the CPU (docs/performance.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import nni_decouple.runner.experiment as experiment
from nni_decouple.cli import main

TINY = ["--epochs", "1", "--train-limit", "32", "--layers", "3", "--channels", "4", "--nodes", "2",
        "--batch-size", "8", "--no-progress"]
# In float64 the two paths' different summation orders and kernels round ~1e-16 apart, so the comparison
# is tight; in float32 an architecture gradient (a small difference of large per-op terms) carries
# rounding noise of ~1% of its largest entry, which after a step can flip a near-tie in the genotype.
DOUBLE = ["--precision", "64-true"]
# Per-method flags that make every phase of the method happen within TINY's epochs.
METHOD_ARGS: dict[str, list[str]] = {
    "dots": ["--epochs", "2", "--stage-epochs", "0,1,0,1"],  # op search, then pruning and topology search
    "edarts": ["--train-limit", "320"],  # its 10 % subset then still has batches for both halves
    "compose": ["--topology", "edge_norm", "--edges", "partial", "--set", "edges.k=2"],  # other axes than DARTS'
}


def search_methods() -> list[str]:
    """Every method ``nni-decouple search`` offers (a new one is covered automatically), and compose."""
    from nni_decouple.strategies import load_all

    return sorted(name for name, method in load_all().items() if method.same_default_as is None) + ["compose"]


class FirstArchGradients(pl.Callback):
    """The gradients of the architecture parameters at the first architecture optimizer step."""

    def __init__(self) -> None:
        self.grads: list[torch.Tensor] | None = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.grads is not None:
            return
        arch = {id(p) for p in pl_module.arch_parameters()}
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if params and all(id(p) in arch for p in params) and any(p.grad is not None for p in params):
            self.grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]


def ops_without_max_pool(method: str) -> str:
    """The method's own op set without ``max_pool_3x3``: max pooling has exact ties on MNIST's flat
    background, and the channels-last and default kernels send a tie's gradient to different (equally
    maximal) inputs, a different valid subgradient rather than a rounding difference
    (docs/performance.md); without it the two paths' gradients agree to float rounding."""
    from nni_decouple.models.ops import resolve_ops
    from nni_decouple.strategies import get_method

    ops = resolve_ops(get_method(method).space_defaults.get("ops", "darts"))
    return ",".join(op for op in ops if op != "max_pool_3x3")


def search(method: str, out: Path, monkeypatch, *flags: str) -> tuple[dict, list[torch.Tensor] | None]:
    probe = FirstArchGradients()
    build = experiment.build_trainer
    monkeypatch.setattr(experiment, "build_trainer",
                        lambda *a, callbacks=(), **k: build(*a, callbacks=[*callbacks, probe], **k))
    torch.manual_seed(0)
    assert main(["search", method, *TINY, *METHOD_ARGS.get(method, []), "--out", str(out), *flags]) == 0
    monkeypatch.setattr(experiment, "build_trainer", build)
    return json.loads((out / "genotype.json").read_text()), probe.grads


@pytest.mark.parametrize("method", search_methods())
def test_fast_path_is_the_same_search(method, tmp_path, monkeypatch):
    ops = ["--ops", ops_without_max_pool(method)]
    genotype_fast, grads_fast = search(method, tmp_path / "fast", monkeypatch, "--fast", *ops, *DOUBLE)
    genotype_plain, grads_plain = search(method, tmp_path / "plain", monkeypatch, "--no-fast", *ops, *DOUBLE)
    assert genotype_fast == genotype_plain
    assert grads_fast is not None and grads_plain is not None, "no architecture step was seen"
    assert len(grads_fast) == len(grads_plain)
    for fast, plain in zip(grads_fast, grads_plain, strict=True):
        assert fast.abs().sum() > 0 or plain.abs().sum() == 0
        torch.testing.assert_close(fast, plain, rtol=1e-6, atol=1e-9 * float(plain.abs().max()))


def test_fast_path_converts_the_supernet_to_channels_last(tmp_path, monkeypatch):
    """Activations, not weights, show the format: at this size every conv weight (1x1, depthwise,
    one input channel) is contiguous in both formats."""
    seen: dict = {}

    class Formats(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            cells = [c for c in pl_module.modules() if hasattr(c, "fast") and hasattr(c, "edges")]
            seen["fast"] = {c.fast for c in cells}

            def hook(module, args, out):
                out = out[-1] if isinstance(out, (list, tuple)) else out  # the cell's new state
                seen.setdefault("cl", not out.is_contiguous() and out.is_contiguous(memory_format=torch.channels_last))

            seen["hook"] = cells[0].register_forward_hook(hook)

    build = experiment.build_trainer
    for flag in ("--fast", "--no-fast"):
        seen.clear()
        monkeypatch.setattr(experiment, "build_trainer",
                            lambda *a, callbacks=(), **k: build(*a, callbacks=[*callbacks, Formats()], **k))
        assert main(["search", "compose", *TINY, "--epochs", "1", "--out", str(tmp_path / flag), flag]) == 0
        seen.pop("hook").remove()
        assert seen == {"cl": flag == "--fast", "fast": {flag == "--fast"}}


def test_bf16_mixed_precision_searches_on_the_cpu(tmp_path, monkeypatch):
    genotype, grads = search("dots", tmp_path / "bf16", monkeypatch, "--precision", "bf16-mixed")
    assert genotype["normal"] and grads is not None and all(torch.isfinite(g).all() for g in grads)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["precision"] == "bf16-mixed"


def test_float16_on_the_cpu_is_one_line(tmp_path, capsys):
    assert main(["search", "darts", *TINY, "--precision", "16-mixed", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "16-mixed needs --device cuda" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method", ["compose", "darts"])  # this package's schedule; NNI's DARTS module
def test_architecture_steps_compute_no_weight_gradients_on_the_fast_path(method, tmp_path, monkeypatch):
    """A full backward of the architecture loss also accumulates every weight's gradient, which the
    weight step zeroes unused: on the fast path each weight gets one gradient per step (the weight
    step's), with --no-fast two."""
    counts: dict[str, list[int]] = {}

    class CountWeightGradients(pl.Callback):
        def __init__(self, key: str) -> None:
            self.key = key

        def on_train_start(self, trainer, pl_module):
            arch = {id(p) for p in pl_module.arch_parameters()}
            conv = next(m.weight for m in pl_module.modules() if isinstance(m, torch.nn.Conv2d)
                        and m.weight.requires_grad and id(m.weight) not in arch)
            counts[self.key] = [0, 0]  # gradients accumulated into one conv weight, training steps
            conv.register_post_accumulate_grad_hook(lambda p: counts[self.key].__setitem__(0, counts[self.key][0] + 1))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            counts[self.key][1] += 1

    build = experiment.build_trainer
    for flag in ("--fast", "--no-fast"):
        callback = CountWeightGradients(flag)
        monkeypatch.setattr(experiment, "build_trainer",
                            lambda *a, callbacks=(), cb=callback, **k: build(*a, callbacks=[*callbacks, cb], **k))
        assert main(["search", method, *TINY, "--out", str(tmp_path / flag), flag]) == 0
    grads, steps = counts["--fast"]
    assert steps > 0 and grads == steps
    grads, steps = counts["--no-fast"]
    assert grads == 2 * steps


def test_channels_last_is_refused_where_torch_corrupts_the_heap():
    """torch 2.14's CPU backward of a strided 1x1 conv with <= 4 input channels aborts in channels-last
    (a 2-channel search did, in the quality benchmark's test): such supernets keep the default format."""
    from nni_decouple.runner.callbacks import channels_last_refusal
    from nni_decouple.spaces import CellSpace

    def space(channels: int):
        return CellSpace(ops=["skip_connect", "sep_conv_3x3"], channels=channels, layers=3, nodes=2,
                         num_classes=10, in_chans=1)

    assert "strided 1x1 convolution with" in channels_last_refusal(space(2))
    assert channels_last_refusal(space(16)) is None
    assert channels_last_refusal(torch.nn.Conv2d(4, 8, 1, stride=2)) is not None
    assert channels_last_refusal(torch.nn.Conv2d(4, 8, 1, stride=1)) is None


def test_a_two_channel_search_runs_on_the_fast_path(tmp_path):
    """Aborted the process (heap corruption) before channels_last_refusal."""
    assert main(["search", "darts", "--dataset", "digits", "--layers", "3", "--channels", "2", "--nodes", "2",
                 "--batch-size", "8", "--train-limit", "32", "--epochs", "2", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
