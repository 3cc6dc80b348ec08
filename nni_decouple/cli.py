"""``nni-decouple``: search / export / train / transfer / show / report / bench.

Subcommands live in :mod:`nni_decouple.commands`, one module each, discovered at start-up; each
module exposes ``add_parser(subparsers)``. Errors the user can fix (:class:`NNIDecoupleError`)
print as one line, without a traceback, and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from .errors import NNIDecoupleError, one_line


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(
        prog="nni-decouple",
        description="Decoupled differentiable NAS on NNI: search, export to timm, transfer to OpenMMLab.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "recipe", None):
            from .runner.recipes import apply_recipe, load_recipe

            apply_recipe(args.subparser, load_recipe(args.recipe), args.method, args.recipe)
            args = parser.parse_args(argv)
        result = args.func(args)
    except NNIDecoupleError as e:
        print(f"nni-decouple {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nni-decouple {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
