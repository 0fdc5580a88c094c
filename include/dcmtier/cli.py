"""The ``dcmtier`` command: the same functions the Airflow tasks call, runnable by hand."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from types import ModuleType

from dcmtier import __version__
from dcmtier.errors import ConfigError

COMMANDS = (
    "tiers",
    "compress",
    "process",
    "sample",
    "quality",
    "db",
    "report",
    "discover",
    "locate",
    "bench",
)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"dcmtier.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcmtier",
        description="Rate-tiered JPEG 2000 / HTJ2K / JPEG-LS copies of DICOM archives.",
    )
    parser.add_argument("--version", action="version", version=f"dcmtier {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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


def print_json(obj: object) -> None:
    """One JSON object per line on stdout (NaN/inf as JSON strings never appear: None instead)."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=str) + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
