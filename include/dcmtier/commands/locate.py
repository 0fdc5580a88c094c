"""``dcmtier locate``: where a source file was found, for an operator who needs the file.

Every output names a source file by its file key: its SOP Instance UID, else the first 32 hex
digits of its content's SHA-256 (quarantine copies, reasons, the failures view, logs and
command output). Landing paths often carry patient names, so the catalogue keeps them in one
table, file_locations, which only operators read (on PostgreSQL, the dcmtier_operator role;
dcmtier_analyst cannot). This command prints every location recorded for each KEY.
"""

from __future__ import annotations

import argparse
import sys

from dcmtier.commands.options import add_catalogue_arguments

EPILOG = (
    "Prints KEY, URI, first seen, last seen: one line per location, newest first (--json: "
    "one JSON object per location). Exit status: 0 every KEY located, 1 a KEY has no "
    "recorded location or the catalogue is unreachable, 2 bad usage."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("keys", nargs="+", metavar="KEY", help="file key (or SOP Instance UID)")
    add_catalogue_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per location")


def run(args: argparse.Namespace) -> int:
    from dcmtier.catalogue import Catalogue
    from dcmtier.cli import EXIT_FAILED, EXIT_OK, print_json
    from dcmtier.commands.options import catalogue_url

    catalogue = Catalogue.connect(catalogue_url(args.catalogue, args.out))
    try:
        rows = catalogue.locate(args.keys)
    finally:
        catalogue.close()
    for row in rows:
        if args.json:
            print_json(row)
        else:
            print(
                f"{row['file_key']}\t{row['uri']}\t{row['first_seen_at']:%Y-%m-%dT%H:%M:%SZ}\t"
                f"{row['last_seen_at']:%Y-%m-%dT%H:%M:%SZ}"
            )
    missing = [key for key in dict.fromkeys(args.keys) if key not in {r["file_key"] for r in rows}]
    for key in missing:
        print(f"dcmtier: no location recorded for {key}", file=sys.stderr)
    return EXIT_FAILED if missing else EXIT_OK
