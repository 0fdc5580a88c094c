"""``dcmtier db``: create, migrate or inspect the catalogue's schema.

The catalogue is --catalogue URL, else $DCMTIER_CATALOGUE_URL, else the embedded SQLite
OUT/catalogue.db of the output root --out (default the current folder). postgresql:// and
postgres:// URLs use psycopg.
"""

from __future__ import annotations

import argparse
import sys

from dcmtier.commands.options import add_catalogue_arguments

ACTIONS = ("upgrade", "downgrade", "current", "history")
EPILOG = (
    "upgrade: apply migrations up to REVISION (default head). downgrade: revert to REVISION "
    "(required; 'base' drops every catalogue table and view, and with them everything "
    "recorded); asks for confirmation, or --yes. current: print the database's revision and "
    "the one this dcmtier needs. history: list the revisions. --json: one JSON object per "
    "revision (history) or for the database (the others). Exit status: 0 done, 1 the "
    "database is unreachable, a migration failed or the downgrade was not confirmed, 2 bad "
    "usage (a downgrade without REVISION, or without --yes when nobody can answer)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--json", action="store_true", help="JSON Lines (see below)")


def run(args: argparse.Namespace) -> int:
    from dcmtier.catalogue import schema
    from dcmtier.cli import EXIT_OK, print_json
    from dcmtier.commands.options import catalogue_url
    from dcmtier.errors import ConfigError, DcmtierError

    if args.action == "history":
        for revision, doc in schema.revisions():
            if args.json:
                print_json({"revision": revision, "doc": doc.replace("``", "`")})
            else:
                print(f"{revision}  {doc.replace('``', '`')}")
        return EXIT_OK
    url = catalogue_url(args.catalogue, args.out)
    if args.action == "downgrade" and not args.revision:
        raise ConfigError("db downgrade needs a REVISION (e.g. base, which drops everything)")
    if args.action == "downgrade" and not args.yes and not _confirmed(url, args.revision):
        raise DcmtierError("downgrade not confirmed: nothing changed")  # exit 1
    _act(args.action, url, args.revision, as_json=args.json)
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


def _act(action: str, url: str, revision: str | None, *, as_json: bool) -> None:
    from dcmtier.catalogue import schema
    from dcmtier.catalogue.engine import safe_url
    from dcmtier.cli import print_json

    if action == "upgrade":
        schema.upgrade(url, revision or "head")
    elif action == "downgrade":
        schema.downgrade(url, str(revision))
    current = schema.current_revision_at(url)
    if as_json:
        print_json({"catalogue": safe_url(url), "revision": current,
                    "head": schema.head_revision()})  # fmt: skip
        return
    print(f"{safe_url(url)}: revision {current or 'none'} (this dcmtier needs "
          f"{schema.head_revision()})")  # fmt: skip
