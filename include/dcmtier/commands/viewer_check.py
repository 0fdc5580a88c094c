"""``dcmtier viewer-check``: each tier as the web viewers see it, decoded by their own codecs.

For every tier under the output root OUT (a folder or an object store URL), a sample of frames
(default: every frame of up to 3 studies) is decoded by Cornerstone3D's WASM codecs, run in
Node.js at the versions two dicom-image-loader releases pin: 5.6.8 (the one OHIF pins) and
5.14.0 (the first with JPEG XL), routed by transfer syntax as each release does. One row per
(tier, viewer): whether it decodes at all (size, precision and sign as the header says),
whether a lossless tier comes out bit-exact, the largest difference from the source (modality
unit; needs the catalogue: --catalogue, $DCMTIER_CATALOGUE_URL or OUT/catalogue.db), decode
time per frame, and the download of the study's ZIP at 100 Mbit/s and 1 Gbit/s plus the time
to display it (download and decoding every frame); --record keeps them in the catalogue,
where the view delivery_by_tier sums them up per tier. Needs Node.js 20+ and `make install`.
"""

from __future__ import annotations

import argparse
from typing import Any

from dcmtier.commands.options import positive

COLUMNS = (
    ("tier", "tier"), ("viewer", "viewer"), ("decodable", "decodable"),
    ("bit_exact", "bit-exact"), ("max_abs_diff", "max |diff|"), ("frames", "frames"),
    ("decode_ms_median", "ms/frame"), ("decode_ms_p95", "p95 ms"),
    ("package_bytes", "ZIP bytes"), ("download_s_100mbps", "download s"),
    ("display_s_100mbps", "display s"),
)  # fmt: skip


EPILOG = (
    "Exit status: 0 checked (whatever the viewers could decode), 1 Node.js or the codec "
    "packages are missing or an output could not be read, 2 bad usage. Download and display "
    "times are at 100 Mbit/s in the table; --json has 1 Gbit/s too."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output root: a folder or a store URL")
    parser.add_argument(
        "--tier", action="append", dest="tiers", metavar="T",
        help="tier to check, repeatable (default: every tier under OUT)",
    )  # fmt: skip
    parser.add_argument(
        "--frames", type=positive, metavar="N",
        help="at most N frames per study, spread evenly (default: every frame)",
    )  # fmt: skip
    parser.add_argument(
        "--studies", type=positive, default=3, metavar="N",
        help="studies per tier (default 3, the first by Study Instance UID)",
    )  # fmt: skip
    parser.add_argument(
        "--catalogue", metavar="URL",
        help="where the sources are recorded (default: $DCMTIER_CATALOGUE_URL, else "
        "OUT/catalogue.db when it exists; without one max_abs_diff is null)",
    )  # fmt: skip
    parser.add_argument(
        "--record", action="store_true",
        help="also record the rows in the catalogue (table viewer_checks, view "
        "delivery_by_tier), replacing each tier x viewer's previous check",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per tier x viewer")


def run(args: argparse.Namespace) -> int:
    from dcmtier.cli import EXIT_OK, print_json
    from dcmtier.errors import ConfigError
    from dcmtier.tiers import get_tier
    from dcmtier.viewer.check import CheckOptions, check
    from dcmtier.viewer.listing import catalogue_url

    for name in args.tiers or []:
        get_tier(name)  # an unknown name is a usage error
    record_into = catalogue_url(args.out, args.catalogue) if args.record else None
    if args.record and record_into is None:
        raise ConfigError(f"--record: no catalogue for {args.out} (--catalogue URL)")
    options = CheckOptions(
        tiers=tuple(args.tiers or ()), studies=args.studies, frames=args.frames,
        catalogue=args.catalogue,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    if not args.json:
        print(" | ".join(title for _, title in COLUMNS))
    for found in check(args.out, options):
        rows.append(found)
        if args.json:
            print_json(found)
        else:
            print(" | ".join(_cell(found[key]) for key, _ in COLUMNS), flush=True)
    if not rows:
        print(f"no tier outputs under {args.out} (derived/<tier>/<study>/...)")
    if record_into is not None and rows:
        from dcmtier.catalogue.delivery import record_viewer_checks

        record_viewer_checks(record_into, rows)
    return EXIT_OK


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)
