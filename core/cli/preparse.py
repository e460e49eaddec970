"""The CLI's first pass: what it must know before its full parser can exist.

Plugins add options to the run commands (the ``add_options`` hook), so the full parser is built
only once the plugins are loaded; which plugins load depends on ``-p`` and, for a resume, on the
checkpoint's record (``--resume``, ``--save-dir``). This pass reads exactly those, plus the
command and ``--help``/``--quiet`` for the first line, with a small argparse parser: argparse's
own spellings (``-pNAME``, ``--plugin=NAME``, ``--`` ending the options), and every other
argument left untouched for the full parser, which reports the mistakes. Abbreviations are not
expanded here (a plugin's option may share a prefix): only a flag typed in full counts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn


class _Unreadable(Exception):
    """The first pass could not read the command line; the full parser will say why."""


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Unreadable(message)


@dataclass(frozen=True)
class FirstPass:
    """What the command line says before plugins are loaded."""

    command: str | None = None
    enable: list[str] = field(default_factory=list)
    """``-p NAME``: plugins to enable, in order."""
    disable: list[str] = field(default_factory=list)
    """``-p no:NAME``: plugins to disable."""
    asks_for_help: bool = False
    quiet: bool = False
    resume: str | None = None
    """``--resume`` as typed (a path or ``auto``); None when not given."""
    save_dir: Path | None = None


def _parser(*flags: str) -> argparse.ArgumentParser:
    parser = _QuietParser(add_help=False, allow_abbrev=False)
    for flag in flags:
        parser.add_argument(flag)
    return parser


def _first_pass_parser() -> argparse.ArgumentParser:
    parser = _QuietParser(add_help=False, allow_abbrev=False)
    parser.add_argument("command", nargs="?")
    parser.add_argument("-p", "--plugin", action="append", default=[])
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--resume")
    parser.add_argument("--save-dir")
    return parser


def first_pass(argv: Sequence[str]) -> FirstPass:
    """Read the command, ``-p``, ``--help``, ``--quiet``, ``--resume`` and ``--save-dir``."""
    try:
        args, _ = _first_pass_parser().parse_known_args(list(argv))
    except _Unreadable:  # e.g. "-p" with no value: nothing to load; the full parser reports it
        return FirstPass()
    enable, disable = split_plugin_values(args.plugin)
    return FirstPass(
        command=args.command,
        enable=enable,
        disable=disable,
        asks_for_help=args.help,
        quiet=args.quiet,
        resume=args.resume,
        save_dir=Path(args.save_dir) if args.save_dir else None,
    )


def split_plugin_values(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """``["a", "no:b"]`` → (["a"], ["b"])."""
    enable = [v for v in values if not v.startswith("no:")]
    disable = [v[3:] for v in values if v.startswith("no:")]
    return enable, disable


def without_option(argv: Sequence[str], flag: str) -> list[str]:
    """``argv`` with every ``flag VALUE`` / ``flag=VALUE`` taken out, everything else in order."""
    try:
        return _parser(flag).parse_known_args(list(argv))[1]
    except _Unreadable:  # the flag with no value: drop it alone
        return [a for a in argv if a != flag]


__all__ = ["FirstPass", "first_pass", "split_plugin_values", "without_option"]
