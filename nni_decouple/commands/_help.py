"""The help formatter of every command: each option's line ends with its real default."""

from __future__ import annotations

import argparse
import copy


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's ``ArgumentDefaultsHelpFormatter``, but also for options without a help text, and
    silent where the default is "unset" (``None``, ``False`` of a switch) or the text already says it."""

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and self._shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        return bool(action.option_strings) and action.default is not None and action.default is not False \
            and action.default != argparse.SUPPRESS \
            and not isinstance(action, (argparse._HelpAction, argparse._VersionAction))

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "default:" in text or not self._shows_default(action):
            return text
        return f"{text} (default: %(default)s)"


class RawDescriptionDefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """:class:`DefaultsHelpFormatter` keeping the description's line breaks."""


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every sub-parser below it a formatter that shows the defaults."""
    if parser.formatter_class is argparse.HelpFormatter:
        parser.formatter_class = DefaultsHelpFormatter
    elif parser.formatter_class is argparse.RawDescriptionHelpFormatter:
        parser.formatter_class = RawDescriptionDefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                show_defaults(sub)
