"""``dcmtier sample``: write a synthetic CT series (the same arguments give the same bytes)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from dcmtier.commands.options import positive


def _date(text: str) -> str:
    if not re.fullmatch(r"(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])", text):
        raise argparse.ArgumentTypeError(f"not a YYYYMMDD date: {text!r}")
    return text


EPILOG = (
    "Prints how many files it wrote and the study's StudyInstanceUID (--json: as one JSON "
    "object). Exit status: 0 written, 1 the folder cannot be written, 2 bad usage."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder for the files")
    parser.add_argument("--slices", type=positive, default=40, metavar="N", help="default 40")
    parser.add_argument(
        "--size", type=positive, default=512, metavar="PX", help="rows and columns (512)"
    )
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="store HU + 1024 unsigned (Rescale Intercept -1024) instead of signed HU",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="anatomy, noise, UIDs")
    parser.add_argument(
        "--study-date", type=_date, default="20240115", metavar="YYYYMMDD", help="Study Date"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object")


def run(args: argparse.Namespace) -> int:
    import pydicom

    from dcmtier.cli import EXIT_OK, print_json
    from dcmtier.sample import write_ct_series

    paths = write_ct_series(  # an OSError (the folder cannot be written) ends in `cli.main`
        args.out_dir,
        slices=args.slices,
        rows=args.size,
        columns=args.size,
        signed=not args.unsigned,
        seed=args.seed,
        study_date=args.study_date,
    )
    study_uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)
    if args.json:
        print_json({"files": len(paths), "folder": str(args.out_dir), "study_uid": study_uid})
        return EXIT_OK
    print(f"wrote {len(paths)} files to {args.out_dir}")
    print(f"StudyInstanceUID {study_uid}")
    return EXIT_OK
