"""``nni-decouple genotype FILE``: validate a genotype and convert it between formats."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import OutputExistsError
from ..io import atomic_write_text
from ..models.genotype import load_genotype


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "genotype", help="validate a genotype file and convert it (JSON, DARTS text, NNI arch dict)",
        description="Read a genotype (our JSON, an NNI arch dict JSON, a run directory, or DARTS/D-DARTS "
                    "Genotype(...) text), validate it, and print or write it in another format.")
    parser.add_argument("path", help="genotype file or run directory")
    parser.add_argument("--to", choices=["json", "text", "arch"], default="text", help="output format")
    parser.add_argument("--out", default=None, help="write to this file instead of printing")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    genotype = load_genotype(args.path)
    if args.to == "json":
        text = genotype.to_json()
    elif args.to == "arch":
        text = json.dumps(genotype.to_arch(), indent=2)
    else:
        text = genotype.to_text()
    if args.out is None:
        print(text)
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{str(out)!r} exists: pass --force to overwrite it or choose another --out")
    atomic_write_text(out, text + "\n")
    print(f"wrote {out}")
    return 0
