"""``dcmtier report``: what each tier saved and what it cost in quality, from the catalogue.

Prints the savings_by_tier and quality_by_tier views as Markdown tables (paste them into a
ticket or a wiki), --csv for a spreadsheet, --json for a program. Bytes are file sizes; ratio
is original / compressed; PSNR is in dB (inf: identical), |diff| in the modality unit.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from dcmtier.commands.db import add_catalogue_arguments

VIEWS = ("savings_by_tier", "quality_by_tier")
# How each column prints in the table; the rest print as they are.
FORMATS: Mapping[str, str] = {
    "ratio": "{:.2f}",
    "psnr_min": "{:.1f}",
    "psnr_median": "{:.1f}",
    "ssim_min": "{:.4f}",
    "ssim_mean": "{:.4f}",
    "max_abs_diff": "{:g}",
    "mean_abs_diff": "{:.2f}",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="savings and quality per tier, from the catalogue",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 printed, 1 the catalogue is unreachable or not migrated, 2 bad "
        "usage. In --json output PSNR is null when identical (+inf).",
    )
    add_catalogue_arguments(parser)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help='one object: {"<view>": [rows]}')
    form.add_argument("--csv", action="store_true", help="CSV, one block per view")
    parser.add_argument("--view", choices=VIEWS, help="print only this view")


def run(args: argparse.Namespace) -> int:
    from dcmtier.catalogue import Catalogue, CatalogueError, resolve_url
    from dcmtier.cli import EXIT_FAILED, EXIT_OK, print_json

    try:
        catalogue = Catalogue.connect(resolve_url(args.catalogue, args.data_dir))
        report = catalogue.report()
    except CatalogueError as exc:
        print(f"dcmtier: {exc}", file=sys.stderr)
        return EXIT_FAILED
    views = [args.view] if args.view else list(VIEWS)
    if args.json:
        print_json({v: [_finite(row) for row in report[v]] for v in views})
    elif args.csv:
        _print_csv(report, views)
    else:
        _print_tables(report, views)
    return EXIT_OK


def _finite(row: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no infinity: an identical frame's PSNR becomes null (as ``dcmtier quality``)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _print_csv(report: Mapping[str, list[dict[str, Any]]], views: Sequence[str]) -> None:
    for index, view in enumerate(views):
        if index:
            sys.stdout.write("\n")
        columns = _columns(report[view])
        if not columns:
            continue
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(report[view])


def _print_tables(report: Mapping[str, list[dict[str, Any]]], views: Sequence[str]) -> None:
    """Each view as a Markdown table under its name, without rich's blank edge lines."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 160))  # wider than the screen: never wrap
    for index, view in enumerate(views):
        rows = report[view]
        columns = _columns(rows)
        print(("\n" if index else "") + view + "\n")
        if not columns:
            print("no rows yet (run `dcmtier process`)")
            continue
        table = Table(*columns, box=box.MARKDOWN)
        for column in table.columns[1:]:
            column.justify = "right"
        for row in rows:
            table.add_row(*(_cell(c, row[c]) for c in columns))
        with console.capture() as captured:
            console.print(table)
        print("\n".join(line.rstrip() for line in captured.get().splitlines() if line.strip()))


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(rows[0]) if rows else []


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, int) and not isinstance(value, bool) and column.endswith("bytes"):
        return f"{value:,}"
    return FORMATS.get(column, "{}").format(value)
