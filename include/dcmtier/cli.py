"""The ``dcmtier`` command: the same functions the Airflow tasks call, runnable by hand."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import textwrap
import traceback
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from dcmtier import __version__
from dcmtier.errors import ConfigError, DcmtierError

COMMANDS = (
    "tiers", "compress", "process", "sample", "quality", "db", "report", "discover", "locate",
    "cache", "bench", "viewer-check",
)  # fmt: skip
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
DEBUG_ENV = "DCMTIER_DEBUG"  # set to see the traceback of an unexpected error
EPILOG_WIDTH = 92  # the width the module docstrings are written at
# a sub-command module's docstring starts "``dcmtier NAME``: what it does"
_DOC_TITLE = re.compile(r"^``dcmtier [\w-]+``:\s*")
_LITERAL = re.compile(r"``([^`]+)``")


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"dcmtier.commands.{name.replace('-', '_')}")


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


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 (one exit per error kind)
    """Entry point: 0 nothing failed, 1 something failed (or the environment stopped the run:
    an unwritable or full output, an unreachable catalogue), 2 bad usage, 130 interrupted.

    Every error is one line on stderr; ``DCMTIER_DEBUG=1`` adds the traceback of an
    unexpected one.
    """
    args = build_parser().parse_args(argv)
    # a UID that is not a DICOM UID is recorded as found; pydicom's warning per read is noise
    warnings.filterwarnings("ignore", message="Invalid value for VR UI", category=UserWarning)
    try:
        code: int = _command(args.command).run(args)
    except ConfigError as exc:
        return _fail(f"{exc}", EXIT_USAGE)
    except BrokenPipeError:  # `dcmtier ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return _fail("interrupted; rerun the same command to finish", EXIT_INTERRUPTED)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", EXIT_FAILED)
    except DcmtierError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)",
            EXIT_FAILED,
        )
    return code


def _fail(message: str, code: int) -> int:
    print(f"dcmtier: {' '.join(message.split())}", file=sys.stderr)
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
