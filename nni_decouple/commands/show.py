"""``nni-decouple show GENOTYPE_OR_NAME --out FILE.(png|svg|pdf)``: draw the cells of an architecture."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import OutputExistsError
from ..options import at_least
from ._architecture import resolve


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "show", help="draw the cells of a genotype, run or registered model (png, svg or pdf)",
        description="Draw every cell (normal and reduction, or every layer of a per-layer genotype) as the "
                    "DARTS-family papers do: inputs c_{k-2} and c_{k-1}, the intermediate nodes, the output c_{k}, "
                    "and the op on every edge. The format follows the suffix of --out.")
    parser.add_argument("source", metavar="GENOTYPE_OR_NAME",
                        help="genotype file, search/train run directory, or a registered model (e.g. darts_v2)")
    parser.add_argument("--out", required=True, help="output file: .png, .svg or .pdf")
    parser.add_argument("--cells", nargs="+", default=None, metavar="LABEL",
                        help="draw only these cells (normal, reduce, normal_3, reduce_5, ...)")
    parser.add_argument("--columns", type=at_least(1), default=None,
                        help="diagrams per row (default: 2, or 3 for many)")
    parser.add_argument("--dpi", type=at_least(1), default=120, help="resolution of a png")
    parser.add_argument("--title", default=None, help="figure title (default: the architecture's name)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viz.diagrams import save_diagram

    out = Path(args.out)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{str(out)!r} exists: pass --force to overwrite it or choose another --out")
    arch = resolve(args.source)
    title = args.title if args.title is not None else arch.label
    save_diagram(arch.genotype, out, cells=args.cells, columns=args.columns, title=title, dpi=args.dpi)
    print(f"wrote {out} ({len(args.cells or arch.genotype.cells())} cells of {arch.label})")
    return 0
