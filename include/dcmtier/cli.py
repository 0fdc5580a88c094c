"""The ``dcmtier`` command: the same functions the Airflow tasks call, runnable by hand."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from dcmtier import __version__
from dcmtier.errors import ConfigError

COMMANDS = (
    "tiers", "compress", "process", "sample", "quality", "db", "report", "discover", "locate",
    "cache", "bench",
)  # fmt: skip
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EPILOG_WIDTH = 92  # the width the module docstrings are written at
# a sub-command module's docstring starts "``dcmtier NAME``: what it does"
_DOC_TITLE = re.compile(r"^``dcmtier [\w-]+``:\s*")
_LITERAL = re.compile(r"``([^`]+)``")


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"dcmtier.commands.{name}")


def help_text(doc: str | None) -> str | None:
    """A module docstring as help text: no reST markup, no "``dcmtier NAME``:" title."""
    if not doc:
        return doc
    text = _DOC_TITLE.sub("", doc.strip(), count=1)
    return _LITERAL.sub(r"`\1`", text[:1].upper() + text[1:])


def _formatter() -> type[argparse.HelpFormatter]:
    from rich_argparse import RawDescriptionRichHelpFormatter

    class HelpFormatter(RawDescriptionRichHelpFormatter):
        """Every command's help in one format; its text is literal (no rich markup)."""

        text_markup = False
        help_markup = False

    return HelpFormatter


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: the shared help format, the docstring made plain."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = _formatter()
        kwargs["description"] = help_text(kwargs.get("description"))
        if kwargs.get("epilog"):  # written as one line in the code; raw text is not wrapped
            kwargs["epilog"] = textwrap.fill(kwargs["epilog"], EPILOG_WIDTH)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcmtier",
        description="Rate-tiered JPEG 2000 / HTJ2K / JPEG-LS copies of DICOM archives.",
        formatter_class=_formatter(),
    )
    parser.add_argument("--version", action="version", version=f"dcmtier {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )
    for name in COMMANDS:
        _command(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 when nothing failed, 1 when something failed, 2 on bad usage."""
    args = build_parser().parse_args(argv)
    try:
        code: int = _command(args.command).run(args)
    except ConfigError as exc:
        print(f"dcmtier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `dcmtier ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    return code


def add_show_paths(parser: argparse.ArgumentParser) -> None:
    """``--show-paths``: also print where source files are. Off by default, since landing
    folders and file names often carry patient names; files are named by file key."""
    parser.add_argument(
        "--show-paths", action="store_true",
        help="also print source files' paths (they may name patients; default: file keys only, "
        "`dcmtier locate KEY` finds a file)",
    )  # fmt: skip


def json_line(obj: object) -> str:
    """One JSON object as one line (NaN/inf as JSON strings never appear: None instead)."""
    return json.dumps(obj, sort_keys=True, default=str)


def print_json(obj: object) -> None:
    """One JSON object per line on stdout."""
    sys.stdout.write(json_line(obj) + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
