"""``dcmtier db``: create, migrate or inspect the catalogue's schema.

The catalogue is --catalogue URL, else $DCMTIER_CATALOGUE_URL, else the embedded SQLite
DIR/catalogue.db (--data-dir, default the current folder). postgresql:// and postgres:// URLs
use psycopg.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ACTIONS = ("upgrade", "downgrade", "current")


def add_catalogue_arguments(parser: argparse.ArgumentParser) -> None:
    """``--catalogue URL`` and ``--data-dir DIR``, shared with ``dcmtier report``."""
    parser.add_argument(
        "--catalogue", metavar="URL",
        help="database URL (default: $DCMTIER_CATALOGUE_URL, else DIR/catalogue.db)",
    )  # fmt: skip
    parser.add_argument(
        "--data-dir", type=Path, default=Path("."), metavar="DIR",
        help="where the embedded SQLite catalogue lives (default: .)",
    )  # fmt: skip


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="create or migrate the catalogue's schema",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="upgrade: apply migrations up to REVISION (default head). downgrade: revert to "
        "REVISION (required; 'base' drops every catalogue table and view). current: print "
        "the database's revision and the one this dcmtier needs. Exit status: 0 done, 1 the "
        "database is unreachable or a migration failed, 2 bad usage.",
    )
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("revision", nargs="?", metavar="REVISION")
    add_catalogue_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dcmtier.catalogue import CatalogueError, resolve_url
    from dcmtier.cli import EXIT_FAILED, EXIT_OK
    from dcmtier.errors import ConfigError

    url = resolve_url(args.catalogue, args.data_dir)
    if args.action == "downgrade" and not args.revision:
        raise ConfigError("db downgrade needs a REVISION (e.g. base, which drops everything)")
    try:
        _act(args.action, url, args.revision)
    except CatalogueError as exc:
        print(f"dcmtier: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _act(action: str, url: str, revision: str | None) -> None:
    from dcmtier.catalogue import schema
    from dcmtier.catalogue.engine import safe_url

    if action == "upgrade":
        schema.upgrade(url, revision or "head")
    elif action == "downgrade":
        schema.downgrade(url, str(revision))
    current = schema.current_revision_at(url) or "none"
    print(f"{safe_url(url)}: revision {current} (this dcmtier needs {schema.head_revision()})")
