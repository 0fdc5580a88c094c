"""``dcmtier process``: the unit of work the Airflow task runs, for every study under SRC.

compress -> verify -> metrics -> Parquet -> ZIP, per study x tier; failed instances are
quarantined and the study x tier reports ``partial``.

Each study x tier is recorded in the catalogue: --catalogue URL, else $DCMTIER_CATALOGUE_URL,
else the embedded SQLite OUT/catalogue.db (created and migrated on first use; an explicit URL
must already be at the current schema: `dcmtier db upgrade --catalogue URL`).

Source files are named by file key (SOP Instance UID, else a content hash), in the output and
under OUT; --show-paths also prints their paths, `dcmtier locate KEY` finds one later.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmtier.cli import add_show_paths
from dcmtier.tiers import DEFAULT_TIERS

if TYPE_CHECKING:
    from dcmtier.catalogue import Catalogue
    from dcmtier.records import Study, StudyTierResult, Unidentified


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "process",
        help="compress, verify, measure and package every study under SRC",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 every study x tier ok, 1 any partial or failed, 2 bad usage.",
    )
    parser.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="files or folders")
    parser.add_argument(
        "--tier", action="append", dest="tiers", metavar="NAME",
        help=f"tier, repeatable (default: {' '.join(DEFAULT_TIERS)})",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output root")
    parser.add_argument("--jobs", type=int, default=0, metavar="N", help="processes (0: all cores)")
    parser.add_argument("--json", action="store_true", help="one JSON object per study x tier")
    parser.add_argument("--policy", type=Path, metavar="FILE", help="modality policy JSON")
    parser.add_argument(
        "--strategy", choices=("per_tier", "layered"), default="layered",
        help="layered (default): J2K rate tiers cut from one layered encode per frame; "
        "per_tier: one encode per tier",
    )  # fmt: skip
    parser.add_argument(
        "--run-id", help="recorded in every row (default: cli-<UTC time to the microsecond>)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--catalogue", metavar="URL",
        help="catalogue database (default: $DCMTIER_CATALOGUE_URL, else OUT/catalogue.db)",
    )  # fmt: skip
    where.add_argument("--no-catalogue", action="store_true", help="record nothing in a catalogue")
    add_show_paths(parser)


def run(args: argparse.Namespace) -> int:
    from dcmtier.cli import EXIT_FAILED
    from dcmtier.errors import CatalogueError

    try:
        return _run(args)
    except CatalogueError as exc:
        print(f"dcmtier: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    from dcmtier.cli import EXIT_FAILED, EXIT_OK, print_json
    from dcmtier.codec.policy import Policy
    from dcmtier.discovery.files import discover
    from dcmtier.discovery.landing import location_scope
    from dcmtier.tiers import resolve_tiers
    from dcmtier.work.batch import default_jobs
    from dcmtier.work.layout import Layout
    from dcmtier.work.quarantine import quarantine_unidentified
    from dcmtier.work.study import process_study

    tiers = resolve_tiers(args.tiers)
    policy = Policy.from_file(args.policy) if args.policy else Policy()
    # microseconds: two runs started within a second are still two attempts
    run_id = args.run_id or f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}"
    layout = Layout(args.out)
    catalogue = None if args.no_catalogue else open_catalogue(args.catalogue, args.out)
    studies, unidentified = discover(args.sources)
    for item in unidentified:
        quarantine_unidentified(item, layout)
        _report(item, as_json=args.json, show_paths=args.show_paths)
    if catalogue is not None:
        for source in args.sources:
            prefix = location_scope(str(source))
            under = [u for u in unidentified if u.uri.startswith(prefix) or u.uri == prefix]
            catalogue.record_unidentified(prefix, under)
    worst = EXIT_FAILED if unidentified else EXIT_OK
    jobs = args.jobs or default_jobs()
    for study in studies:
        results = process_study(
            study, tiers, layout, run_id=run_id, jobs=jobs, policy=policy, catalogue=catalogue,
            strategy=args.strategy,
        )  # fmt: skip
        for result in results:
            row = _row(result, study, show_paths=args.show_paths)
            if args.json:
                print_json(row)
            else:
                _print_line(row)
            worst = EXIT_FAILED if result.status != "ok" else worst
    return worst


def open_catalogue(explicit: str | None, data_dir: Path) -> Catalogue:
    """The catalogue to record into; only the embedded default is migrated here."""
    from dcmtier.catalogue import Catalogue, resolve_url
    from dcmtier.catalogue.engine import is_default

    url = resolve_url(explicit, data_dir)
    if is_default(explicit):
        Catalogue.upgrade(url)
    return Catalogue.connect(url)


def _report(item: Unidentified, *, as_json: bool, show_paths: bool) -> None:
    """A file that belongs to no study, named by its key (its reason starts with it)."""
    from dcmtier.cli import print_json

    row = {"status": "failed", "source": item.key, "reason": item.reason}
    if show_paths:
        row["path"] = item.uri
    if as_json:
        print_json(row)
    else:
        print(f"FAILED {item.reason}" + (f"  [{item.uri}]" if show_paths else ""))


def _row(result: StudyTierResult, study: Study, *, show_paths: bool) -> dict[str, Any]:
    """The result as printed; with ``show_paths`` each failure also says where its file is."""
    row = result.as_dict()
    if show_paths:
        where = {study.key(p): study.uri(p) for p in study.files}
        for failure in row["failures"]:
            failure["path"] = where.get(failure["source"])
    return row


def _print_line(row: dict[str, Any]) -> None:
    ratio = row["pixel_bytes_in"] / row["pixel_bytes_out"] if row["pixel_bytes_out"] else 0.0
    counts = " ".join(f"{k}={v}" for k, v in row["counts"].items())
    print(
        f"{row['study_uid']}  {row['tier']:<14} {row['status']:<8} {counts:<24} "
        f"pixel ratio {ratio:7.2f}  package {row['package'] or '-'}"
    )
    for failure in row["failures"]:
        where = f"  [{failure['path']}]" if failure.get("path") else ""
        print(f"    {failure['status']}: {failure['reason']}{where}")
