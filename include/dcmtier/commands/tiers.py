"""``dcmtier tiers``: every tier with codec, ratio, transfer syntax and intended use."""

from __future__ import annotations

import argparse

from dcmtier.tiers import DEFAULT_TIERS, TIERS, Tier

EPILOG = "Exit status: 0 listed, 2 bad usage."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per tier")


def describe(tier: Tier) -> dict[str, object]:
    bound = tier.bound.describe() if tier.bound is not None else None
    row: dict[str, object] = {
        **tier.as_dict(), "effort": tier.effort, "bound": bound,
        "default": tier.name in DEFAULT_TIERS,
    }  # fmt: skip
    if tier.chooses:  # the codec and syntax are chosen per instance among these
        row["candidates"] = [codec.label for codec in tier.candidates]
    return row


def run(args: argparse.Namespace) -> int:
    from dcmtier.cli import print_json

    rows = [describe(t) for t in TIERS.values()]
    if args.json:
        for row in rows:
            print_json(row)
        return 0
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in ("tier", "codec", "ratio", "transfer syntax", "use", "default"):
        table.add_column(column, no_wrap=True)  # a name or UID cut short is a wrong name
    for row in rows:
        ratio = f"{row['target_ratio']:g}:1" if row["target_ratio"] else "lossless"
        ratio = f"NEAR={row['near']}" if row["near"] else ratio
        bound = TIERS[str(row["name"])].bound
        ratio = bound.short() if bound is not None else ratio
        table.add_row(
            str(row["name"]),
            str(row["codec"]),  # "auto": chosen per instance (--json lists the candidates)
            ratio,
            str(row["transfer_syntax"] or "per instance"),
            str(row["use"]),
            "yes" if row["default"] else "",
        )
    console = Console()
    # never narrower than the table: a narrow terminal wraps lines, a pipe gets them whole
    width = console.measure(table, options=console.options.update_width(1000)).maximum
    Console(width=max(console.width, width) if console.is_terminal else width).print(table)
    return 0
