"""``dcmtier discover``: bring the catalogue's landing index up to date, nothing else.

Lists LANDING (a folder or an fsspec URL), reads the header of every file that is new or whose
size, modification time or ETag changed since the index last saw it, and marks files no longer
there as gone: the first step of every DAG run, alone. A DICOMweb archive
(dicomweb+http(s)://host/prefix) is searched with QIDO-RS instead, and the metadata of each
instance not seen yet fetched (headers_read counts those); credentials from
$DCMTIER_DICOMWEB_TOKEN or $DCMTIER_DICOMWEB_USER / $DCMTIER_DICOMWEB_PASSWORD. The catalogue
is --catalogue URL, else $DCMTIER_CATALOGUE_URL, else the embedded SQLite OUT/catalogue.db of
the output root --out (default the current folder; created and migrated when missing).
"""

from __future__ import annotations

import argparse

from dcmtier.commands.options import add_catalogue_arguments, positive

EPILOG = (
    "Output: files_listed, headers_read, files_new, files_changed, files_gone, unreadable, "
    "studies (present under LANDING) and seconds (with list_s, read_s, write_s); with --json "
    "as one JSON object on one line. Exit status: 0 done, 1 the catalogue is unreachable or "
    "not migrated, 2 bad usage or no such landing area."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "landing", metavar="LANDING", help="a folder, an fsspec URL or dicomweb+http(s)://…"
    )
    add_catalogue_arguments(parser)
    parser.add_argument(
        "--prefix", action="append", default=[], metavar="PATH",
        help="list only this folder below LANDING (repeatable), e.g. 2024/03/01",
    )  # fmt: skip
    parser.add_argument(
        "--readers", type=positive, default=16, metavar="N",
        help="concurrent header reads on an object store or DICOMweb archive (16)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object on one line")


def run(args: argparse.Namespace) -> int:
    from dcmtier.cli import EXIT_OK, print_json
    from dcmtier.commands.options import open_catalogue
    from dcmtier.discovery.index import index_landing, scopes_of

    catalogue = open_catalogue(args.catalogue, args.out)
    try:
        stats = index_landing(args.landing, catalogue, prefixes=args.prefix, readers=args.readers)
        studies = catalogue.landing_study_count(scopes_of(args.landing))
    finally:
        catalogue.close()
    out = {**stats.as_dict(), "studies": studies}
    if args.json:
        print_json(out)
    else:
        print(
            f"{out['files_listed']} files listed, {out['headers_read']} headers read "
            f"({out['files_new']} new, {out['files_changed']} changed, {out['unreadable']} "
            f"without a study), {out['files_gone']} gone; {studies} studies; "
            f"{out['seconds']:.2f} s"
        )
    return EXIT_OK
