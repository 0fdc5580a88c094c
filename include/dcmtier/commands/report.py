"""``dcmtier report``: what each tier saved and what it cost in quality, from the catalogue.

Prints the catalogue's views: by default savings_by_tier and quality_by_tier, and how many
unresolved failures there are; --view NAME (repeatable, or `all`) for any of savings_by_tier,
quality_by_tier, savings_by_study, lineage, failures and backlog. The catalogue is the one
`dcmtier process --out DIR` wrote (--out DIR, default the current folder), or --catalogue URL.
Markdown tables by default (paste them into a ticket or a wiki); --json for a program (JSON
Lines: one object per row, its view under "view"); --csv for a spreadsheet (one block per
view). Bytes are file sizes; ratio is original / compressed; PSNR is in dB (inf: identical),
|diff| in the modality unit.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from dcmtier.commands.options import add_catalogue_arguments

# the catalogue's views (dcmtier.catalogue.store.VIEWS, named here so that building the parser
# does not load SQLAlchemy; a test checks both against the migrated database)
VIEWS = (
    "savings_by_tier", "quality_by_tier", "savings_by_study", "lineage", "failures", "backlog",
    "savings_by_modality", "savings_by_month", "quality_by_modality", "quality_by_scanner",
    "delivery_by_tier", "estimate_vs_actual",
)  # fmt: skip
REPORT_VIEWS = VIEWS[:2]

FAILURES = "failures"
# what an empty view means, said instead of an empty table
EMPTY: Mapping[str, str] = {
    FAILURES: "no rows: no unresolved failures",
    "lineage": "no rows: no derived instance recorded yet (run `dcmtier process`)",
    "delivery_by_tier": "no rows: no tier checked with the web viewers' codecs yet (run "
    "`dcmtier viewer-check OUT --record`)",
    "estimate_vs_actual": "no rows: no forecast kept yet (run `dcmtier estimate LANDING`)",
    "backlog": "no rows: no study in the landing index waits for a tier (the DAG's discovery "
    "fills the index; `dcmtier discover` updates it)",
}
# How each column prints in the table; the rest print as they are.
FORMATS: Mapping[str, str] = {
    "ratio": "{:.2f}",
    "psnr_min": "{:.1f}",
    "psnr_median": "{:.1f}",
    "ssim_min": "{:.4f}",
    "ssim_mean": "{:.4f}",
    "ssim_median": "{:.4f}",
    "psnr_range_min": "{:.1f}",
    "ssim_range_min": "{:.4f}",
    "max_abs_diff": "{:g}",
    "mean_abs_diff": "{:.2f}",
}


EPILOG = (
    "Exit status: 0 printed, 1 the catalogue is unreachable or not migrated (`dcmtier db "
    "upgrade`), 2 bad usage. In --json output PSNR is null when identical (+inf)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_catalogue_arguments(parser)
    parser.add_argument(
        "--view", action="append", dest="views", choices=(*VIEWS, "all"), metavar="NAME",
        help=f"a view to print, repeatable: {', '.join(VIEWS)}, or all "
        f"(default: {' and '.join(REPORT_VIEWS)}, and the count of failures)",
    )  # fmt: skip
    form = parser.add_mutually_exclusive_group()
    form.add_argument(
        "--json", action="store_true", help='JSON Lines: one object per row, with its "view"'
    )
    form.add_argument("--csv", action="store_true", help="CSV: a header and rows per view")


def run(args: argparse.Namespace) -> int:
    from dcmtier.catalogue import Catalogue
    from dcmtier.cli import EXIT_OK, print_json
    from dcmtier.commands.options import catalogue_url

    chosen = args.views or []
    views = list(VIEWS) if "all" in chosen else list(dict.fromkeys(chosen)) or list(REPORT_VIEWS)
    catalogue = Catalogue.connect(catalogue_url(args.catalogue, args.out))
    try:
        # the failures are always read: an empty savings view may mean "everything failed"
        report = catalogue.report(list(dict.fromkeys([*views, FAILURES])))
    finally:
        catalogue.close()
    if args.json:
        for view in views:
            for row in report[view]:
                print_json({"view": view, **_finite(row)})
    elif args.csv:
        _print_csv(report, views)
    else:
        _print_tables(report, views)
        failures = len(report[FAILURES])
        if FAILURES not in views and failures:
            print(f"\n{failures} unresolved failures: `dcmtier report --view failures` lists them")
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

    for index, view in enumerate(views):
        rows = report[view]
        columns = _columns(rows)
        print(("\n" if index else "") + view + "\n")
        if not columns:
            print(_empty(view, len(report[FAILURES])))
            continue
        table = Table(*columns, box=box.MARKDOWN)
        for column, name in zip(table.columns, columns, strict=True):
            numbers = any(isinstance(row[name], int | float) for row in rows)
            column.justify = "right" if numbers else "left"
        for row in rows:
            table.add_row(*(_cell(c, row[c]) for c in columns))
        # as wide as the table needs: a cell is never wrapped or cut, whatever the screen
        console = Console(width=10_000)
        console.width = console.measure(table).maximum
        with console.capture() as captured:
            console.print(table)
        print("\n".join(line.rstrip() for line in captured.get().splitlines() if line.strip()))


def _empty(view: str, failures: int) -> str:
    if view in EMPTY:
        return EMPTY[view]
    if failures:
        return f"no rows: no instance compressed yet, and {failures} unresolved failures"
    return "no rows yet (run `dcmtier process`)"


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
