"""``dcmtier publish``: store tiers of an output into a DICOMweb archive with STOW-RS.

Sends the derived instances the catalogue records for each --tier (written and verified by
`dcmtier process` or the DAG; outputs flagged by their quality gate are not sent) to the
archive --to (dicomweb+http://host/prefix or dicomweb+https://...). The archive is asked per
study which instances it holds, and only the others are sent (batched, retried on a 5xx), so a
rerun sends nothing already there; what it holds is recorded in the catalogue's publications
table and shown on the study page. Credentials: $DCMTIER_DICOMWEB_TOKEN (bearer) or
$DCMTIER_DICOMWEB_USER and $DCMTIER_DICOMWEB_PASSWORD (basic). OUT is the output root: the
catalogue is --catalogue URL, else $DCMTIER_CATALOGUE_URL, else OUT/catalogue.db.
"""

from __future__ import annotations

import argparse

from dcmtier.commands.options import add_catalogue_url

EPILOG = (
    "Output: destination, tiers, studies, instances, already_there, sent, not_sent_gate, "
    "failed, requests, seconds and failures (by SOP Instance UID); with --json as one JSON "
    "object on one line. Exit status: 0 every instance is in the archive, 1 some are not, or "
    "the archive or the catalogue is unreachable, 2 bad usage."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="the output root of the run(s) to publish")
    parser.add_argument(
        "--tier", dest="tiers", action="append", required=True, metavar="TIER",
        help="a tier to publish (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--to", required=True, metavar="URL",
        help="the archive's DICOMweb root, e.g. dicomweb+https://pacs.example.org/dicom-web",
    )  # fmt: skip
    add_catalogue_url(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object on one line")


def run(args: argparse.Namespace) -> int:
    from dcmtier.cli import EXIT_FAILED, EXIT_OK, print_json
    from dcmtier.commands.options import open_catalogue
    from dcmtier.errors import ConfigError
    from dcmtier.storage.dicomweb import is_dicomweb
    from dcmtier.work.stow import publish_tiers

    if not is_dicomweb(args.to):
        raise ConfigError(f"--to {args.to}: not a DICOMweb URL (dicomweb+http(s)://host/prefix)")
    catalogue = open_catalogue(args.catalogue, args.out)
    try:
        stats = publish_tiers(catalogue, args.tiers, args.to)
    finally:
        catalogue.close()
    if args.json:
        print_json(stats.as_dict())
    else:
        for failure in stats.failures:
            print(f"failed: {failure}")
        print(
            f"{stats.destination}: {stats.instances} instances of {', '.join(stats.tiers)} in "
            f"{stats.studies} studies; {stats.sent} sent in {stats.requests} requests, "
            f"{stats.already_there} already there, {stats.not_sent_gate} not sent (quality "
            f"gate), {stats.failed} failed; {stats.seconds:.2f} s"
        )
    return EXIT_FAILED if stats.failed else EXIT_OK
