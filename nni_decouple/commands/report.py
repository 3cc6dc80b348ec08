"""``nni-decouple report RUN_DIR``: one self-contained HTML page about a search run (see :mod:`..report`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import NNIDecoupleError, OutputExistsError
from ._architecture import network_for, resolve


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write a self-contained HTML report of a search run",
        description="One HTML page with embedded plots: loss and accuracy, the architecture weights of every kind "
                    "over the search (op weights, topology, raw alpha/beta/gamma, per cell), the temperature and "
                    "stage timeline, skip connections, the derived cells, and the derived network's params and MACs.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the --out directory of `nni-decouple search`")
    parser.add_argument("--out", default=None, help="output file (default: RUN_DIR/report.html)")
    parser.add_argument("--no-size", action="store_true", help="skip building the network to count params and MACs")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.set_defaults(func=run)


def network_sizes(run_dir: str | Path) -> list[dict[str, Any]]:
    """Params and MACs (the package's counter, :mod:`nni_decouple.models.cards`) of the derived network as
    searched (the search's channels and cells) and as evaluated (DARTS' evaluation network for the
    dataset, or the shape the method asks for)."""
    import json

    from ..models.cards import count_macs, count_params
    from ..models.network import DartsNetwork
    from ..models.timm_models import network_config

    run_dir = Path(run_dir)
    arch = resolve(str(run_dir))
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    keys = ("stem", "channels", "layers", "num_classes", "in_chans", "input_size")
    shapes: list[tuple[str, dict[str, Any]]] = [("evaluation network", {})]
    if config.get("channels") and config.get("layers"):
        shapes.insert(0, ("as searched", {"channels": config["channels"], "layers": config["layers"]}))
    rows = []
    for name, overrides in shapes:
        network = network_for(arch, overrides)
        entry = network_config(arch.genotype, **{k: network[k] for k in (*keys, "dataset") if k in network})
        model = DartsNetwork(arch.genotype, entry["channels"], entry["layers"], entry["num_classes"],
                             entry["in_chans"], entry["stem"])
        size = (entry["in_chans"], entry["input_size"], entry["input_size"])
        rows.append({"network": name, **{k: entry[k] for k in keys}, "params": count_params(model),
                     "macs": count_macs(model, size)})
    return rows


def run(args: argparse.Namespace) -> int:
    from ..viz.report import write_report

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "report.html"
    if out.exists() and not args.force:
        raise OutputExistsError(f"{str(out)!r} exists: pass --force to overwrite it or choose another --out")
    sizes: list[dict[str, Any]] | str | None = None
    if not args.no_size and (run_dir / "genotype.json").is_file():
        try:
            sizes = network_sizes(run_dir)
        except (NNIDecoupleError, ValueError, RuntimeError) as e:  # keep the rest of the report
            sizes = f"{type(e).__name__}: {e}"
    path = write_report(run_dir, out, sizes)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
