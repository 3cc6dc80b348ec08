"""CLI subcommands, one module each (``add_parser(subparsers)``); see :mod:`nni_decouple.cli`."""
