"""The ``dcmtier`` command: the same functions the Airflow tasks call, runnable by hand.

Commands are a table, name -> module and one-line summary (pip's ``commands/__init__.py`` is
the model): ``dcmtier --help`` lists the table without importing a command, and only the
command that runs is imported, so the help answers without numpy, pydicom or SQLAlchemy. A
command module has a docstring (its description), ``EPILOG`` (its exit codes),
``add_arguments(parser)`` and ``run(args) -> exit code``; it raises on error and ``main``
prints the one line.
"""

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
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from dcmtier.errors import ConfigError, DcmtierError, Interrupted


@dataclass(frozen=True)
class CommandInfo:
    """A command: the module that implements it and the summary ``dcmtier --help`` lists."""

    module: str
    summary: str


COMMANDS: dict[str, CommandInfo] = {
    "tiers": CommandInfo("dcmtier.commands.tiers", "list the tiers"),
    "compress": CommandInfo("dcmtier.commands.compress", "compress files into tiers"),
    "process": CommandInfo(
        "dcmtier.commands.process", "compress, verify, measure and package every study under SRC"
    ),
    "sample": CommandInfo("dcmtier.commands.sample", "write a synthetic CT series"),
    "quality": CommandInfo(
        "dcmtier.commands.quality", "compare a derived file with its original, frame by frame"
    ),
    "db": CommandInfo("dcmtier.commands.db", "create or migrate the catalogue's schema"),
    "report": CommandInfo(
        "dcmtier.commands.report", "savings and quality per tier, from the catalogue"
    ),
    "discover": CommandInfo(
        "dcmtier.commands.discover",
        "update the landing index (headers of new or changed files only)",
    ),
    "locate": CommandInfo(
        "dcmtier.commands.locate",
        "where the file with a given file key (SOP UID or content hash) was found",
    ),
    "cache": CommandInfo(
        "dcmtier.commands.cache", "list or prune the layered-encode cache (OUT/cache/layered)"
    ),
    "bench": CommandInfo("dcmtier.commands.bench", "benchmark against the gdcmconv-per-file chain"),
    "publish": CommandInfo(
        "dcmtier.commands.publish",
        "store tiers into a DICOMweb archive (STOW-RS); a rerun sends nothing twice",
    ),
    "viewer-check": CommandInfo(
        "dcmtier.commands.viewer_check",
        "decode each tier with the web viewers' own codecs (Node.js)",
    ),
    "estimate": CommandInfo(
        "dcmtier.commands.estimate",
        "forecast a backfill's stored bytes, time and cost from a sample",
    ),
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
DEBUG_ENV = "DCMTIER_DEBUG"  # set to see the traceback of an unexpected error
EPILOG_WIDTH = 92  # the width the module docstrings are written at
# a sub-command module's docstring starts "``dcmtier NAME``: what it does"
_DOC_TITLE = re.compile(r"^``dcmtier [\w-]+``:\s*")
_LITERAL = re.compile(r"``([^`]+)``")


def command_module(name: str) -> ModuleType:
    """The module of command ``name``, imported now."""
    return importlib.import_module(COMMANDS[name].module)


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

        def add_argument(self, action: argparse.Action) -> None:
            super().add_argument(action)
            if isinstance(action, argparse._SubParsersAction):  # argparse measures sub-commands
                for sub in action._get_subactions():  # without their indent: a long name wraps
                    width = len(sub.dest) + self._current_indent + 2 * self._indent_increment
                    self._action_max_length = max(self._action_max_length, width)

    return HelpFormatter


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: the shared help format, the docstring made plain."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = _formatter()
        kwargs["description"] = help_text(kwargs.get("description"))
        if kwargs.get("epilog"):  # written as one line in the code; raw text is not wrapped
            kwargs["epilog"] = textwrap.fill(kwargs["epilog"], EPILOG_WIDTH)
        super().__init__(*args, **kwargs)


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from dcmtier import __version__

        parser.exit(message=f"dcmtier {__version__}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser: every command listed with its summary, ``command``'s arguments added (its
    module imported); the others stay bare, as ``dcmtier --help`` needs nothing more."""
    parser = argparse.ArgumentParser(
        prog="dcmtier",
        description="Rate-tiered JPEG 2000 / HTJ2K / JPEG-LS copies of DICOM archives.",
        epilog="`dcmtier COMMAND --help` describes a command, its options and its exit codes.",
        formatter_class=_formatter(),
    )
    parser.add_argument("--version", action=_Version)
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )
    for name, info in COMMANDS.items():
        if name != command:
            subparsers.add_parser(name, help=info.summary)
            continue
        module = command_module(name)
        sub = subparsers.add_parser(
            name, help=info.summary, description=module.__doc__, epilog=module.EPILOG
        )
        module.add_arguments(sub)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``: its first word that is not an option (``dcmtier`` has
    no option that takes a value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 (one exit per error kind)
    """Entry point: 0 nothing failed, 1 something failed (or the environment stopped the run:
    an unwritable or full output, an unreachable catalogue), 2 bad usage, 130 interrupted
    (143 when ``dcmtier process`` was stopped by SIGTERM).

    The one place errors become output: every error is one line on stderr, ``DCMTIER_DEBUG=1``
    adds the traceback of an unexpected one. Commands raise; none prints its own errors.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    # a UID that is not a DICOM UID is recorded as found; pydicom's warning per read is noise
    warnings.filterwarnings("ignore", message="Invalid value for VR UI", category=UserWarning)

    try:
        code: int = command_module(args.command).run(args)
    except ConfigError as exc:
        return _fail(f"{exc}", EXIT_USAGE)
    except BrokenPipeError:  # `dcmtier ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    except Interrupted as exc:  # SIGINT or SIGTERM during `dcmtier process`
        return _fail(
            f"{exc}: the unfinished study x tier attempts are marked interrupted; run the same "
            "command again to make them",
            exc.exit_code,
        )
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
