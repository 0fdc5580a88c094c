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

ACTIONS = ("upgrade", "downgrade", "current", "history")


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
        epilog="upgrade: apply migrations up to REVISION (default head). downgrade: revert to "
        "REVISION (required; 'base' drops every catalogue table and view, and with them "
        "everything recorded); asks for confirmation, or --yes. current: print the database's "
        "revision and the one this dcmtier needs. history: list the revisions. Exit status: 0 "
        "done, 1 the database is unreachable, a migration failed or the downgrade was not "
        "confirmed, 2 bad usage.",
    )
    parser.add_argument(
        "action", choices=ACTIONS, metavar="ACTION", help=f"{', '.join(ACTIONS)} (see below)"
    )
    parser.add_argument(
        "revision", nargs="?", metavar="REVISION",
        help="a revision id as `dcmtier db history` lists it (e.g. 0003), 'head' (the newest, "
        "upgrade's default) or 'base' (before the first: no catalogue at all)",
    )  # fmt: skip
    parser.add_argument(
        "-y", "--yes", action="store_true", help="downgrade without asking (scripts, CI)"
    )
    add_catalogue_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dcmtier.catalogue import CatalogueError, resolve_url, schema
    from dcmtier.cli import EXIT_FAILED, EXIT_OK
    from dcmtier.errors import ConfigError

    if args.action == "history":
        for revision, doc in schema.revisions():
            print(f"{revision}  {doc.replace('``', '`')}")
        return EXIT_OK
    url = resolve_url(args.catalogue, args.data_dir)
    if args.action == "downgrade" and not args.revision:
        raise ConfigError("db downgrade needs a REVISION (e.g. base, which drops everything)")
    try:
        if args.action == "downgrade" and not args.yes and not _confirmed(url, args.revision):
            print("dcmtier: downgrade not confirmed: nothing changed", file=sys.stderr)
            return EXIT_FAILED
        _act(args.action, url, args.revision)
    except CatalogueError as exc:
        print(f"dcmtier: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _confirmed(url: str, revision: str) -> bool:
    """Ask before a downgrade drops recorded data; refuse (usage error) when nobody can answer."""
    from dcmtier.catalogue import schema
    from dcmtier.catalogue.engine import safe_url
    from dcmtier.errors import ConfigError

    current = schema.current_revision_at(url)
    if current is None:
        return True  # no catalogue schema there: nothing to lose
    what = (
        "drops every catalogue table and view, and everything recorded in them"
        if revision == "base"
        else f"reverts the schema from {current} to {revision}, dropping what the later "
        "migrations added"
    )
    if not sys.stdin.isatty():
        raise ConfigError(f"db downgrade {revision} {what}: pass --yes to confirm")
    answer = input(f"db downgrade {revision} on {safe_url(url)} {what}. Type yes to go on: ")
    return answer.strip().lower() == "yes"


def _act(action: str, url: str, revision: str | None) -> None:
    from dcmtier.catalogue import schema
    from dcmtier.catalogue.engine import safe_url

    if action == "upgrade":
        schema.upgrade(url, revision or "head")
    elif action == "downgrade":
        schema.downgrade(url, str(revision))
    current = schema.current_revision_at(url) or "none"
    print(f"{safe_url(url)}: revision {current} (this dcmtier needs {schema.head_revision()})")
