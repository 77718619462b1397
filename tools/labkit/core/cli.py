"""Command lines in the user's language: argparse, with its own words (usage, options, -h) translated.

The language is known before the command line is parsed (its --help is already in it): the --lang
flag, read ahead, or else the environment's (labinfo.user_language).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn

from labkit.core.labinfo import user_language
from minituner.i18n import LANGUAGES, tr


def language_of(argv: Sequence[str]) -> str:
    """The language argv asks for with --lang LANG or --lang=LANG (a value it lacks is the parser's to refuse)."""
    flag = None
    for k, arg in enumerate(argv):
        if arg == "--lang" and k + 1 < len(argv):
            flag = argv[k + 1]
        elif arg.startswith("--lang="):
            flag = arg.partition("=")[2]
    return user_language(flag if flag in LANGUAGES else None)


def parser(prog: str, description: str, lang: str) -> argparse.ArgumentParser:
    """An ArgumentParser whose help is in lang, with a --lang option of its own."""

    class Formatter(argparse.HelpFormatter):
        def add_usage(self, usage: str | None, actions: Iterable[argparse.Action],
                      groups: Iterable[argparse._MutuallyExclusiveGroup], prefix: str | None = None) -> None:  # fmt: skip
            super().add_usage(usage, actions, groups, prefix or tr(lang, "usage: "))

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # argparse's own, with its "error" in lang
            self.print_usage(sys.stderr)
            self.exit(2, f"{self.prog}: {tr(lang, 'error')}: {message}\n")

    made = Parser(prog=prog, description=description, add_help=False, formatter_class=Formatter)
    made._optionals.title = tr(lang, "options")
    made.add_argument("-h", "--help", action="help", help=tr(lang, "show this help message and exit"))
    made.add_argument("--lang", choices=LANGUAGES, help=tr(lang, "language (default: from LANGUAGE, LC_ALL, LC_MESSAGES or LANG)"))
    return made
