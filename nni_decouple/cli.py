"""``nni-decouple``: search / export / train / transfer / show / report / bench.

Subcommands live in :mod:`nni_decouple.commands`, one module each, discovered at start-up; each
module exposes ``add_parser(subparsers)``. Building the parser imports no heavy library (torch, timm,
Lightning, NNI, mmengine, matplotlib): each command imports what it needs when it runs, so ``--help``
and light commands answer at once (``tests/test_cli_startup.py``). Errors the user can fix
(:class:`NNIDecoupleError`) print as one line, without a traceback, and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from . import __version__
from .errors import NNIDecoupleError, one_line, show_warning


def build_parser() -> argparse.ArgumentParser:
    from . import commands
    from .commands._help import show_defaults

    parser = argparse.ArgumentParser(
        prog="nni-decouple",
        description="Decoupled differentiable NAS on NNI: search, export to timm, transfer to OpenMMLab.",
    )
    parser.add_argument("--version", action="version", version=f"nni-decouple {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").add_parser(subparsers)
    show_defaults(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    warnings.showwarning = show_warning  # one line, no source line: the user sees the message, not our code
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        recipe = getattr(args, "recipe", None)
        if recipe and recipe not in getattr(args, "named_recipes", ()):  # a YAML file, the same in every command
            from .runner.recipes import apply_recipe, load_recipe

            apply_recipe(args.subparser, load_recipe(recipe), getattr(args, "method", None), recipe,
                         command=args.command)
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
