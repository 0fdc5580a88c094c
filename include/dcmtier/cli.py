"""The ``dcmtier`` command: the same functions the Airflow tasks call, runnable by hand."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from types import ModuleType

from dcmtier import __version__
from dcmtier.errors import ConfigError, DcmtierError

COMMANDS = ("tiers", "compress", "process", "sample", "quality", "db", "report", "bench")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
DEBUG_ENV = "DCMTIER_DEBUG"  # set to see the traceback of an unexpected error


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


def print_json(obj: object) -> None:
    """One JSON object per line on stdout (NaN/inf as JSON strings never appear: None instead)."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=str) + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
