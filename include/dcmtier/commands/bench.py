"""``dcmtier bench``: dcmtier against one gdcmconv process per file, same files, same run.

Generates a CT study (signed and unsigned, SLICES of SIZE x SIZE) or takes --data, then times,
alternately, the gdcmconv chain and dcmtier for j2k-lossless, j2k-r20 and j2k-r100, dcmtier for
htj2k-lossless, htj2k-r20 and jxl-lossless (JPEG XL also per effort beside J2K lossless),
and the unit of work (catalogue included) for the 13 default
tiers, layered and per tier, with one process and with all cores; measures peak RSS of one
study x tier at two slice counts, and Airflow's share of a DAG run (dag.test). Writes every
figure (min / median / max over the runs) to --out and prints a table with the ratios.
The defaults take about an hour on two cores; quick: --slices 20 --runs 1 --rss-slices 5 10
--dag-slices 5.

`dcmtier bench scale` measures discovery instead: `dcmtier discover` on synthetic archives of
--scale-files files (small studies of --files-per-study files): the first pass, a repeat, and a
pass after --new-share of new files landed (or --new-files, as one new study), on fresh SQLite
catalogues or fresh databases on --catalogue-server. With --s3 the archive lies in a bucket of an
S3 API server (moto) the benchmark starts on loopback. With --dag it runs the DAG instead on a
real Airflow (scheduler, api-server, dag-processor, two Celery workers; metadata and catalogue
in fresh databases on the PostgreSQL at 127.0.0.1:5432, Redis broker): a study_date backfill
of --backfill-studies studies x 2 tiers over --backfill-days days; it reports wall time,
scheduling overhead per task instance and metadata database growth per study. With --mix
hospital it backfills the hospital mix x 13 tiers (--mix-studies a row, or per row) once per
--unit-seconds value (default 0, then 120) on one deployment and prints per row wall time, task
instances, slot time in task bodies and outside, orchestration share and metadata per study.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dcmtier.commands.options import add_jobs, positive

QUALITY_NOISE_HU = 50.0
FRONTIER_NOISE_HU, FRONTIER_SLICES, FRONTIER_SIZE = 15.0, 24, 256


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return value


EPILOG = (
    "Writes its figures to --out (a JSON file) and prints a table. Exit status: 0 measured "
    "(targets met or not: see the table), 1 a step failed (a process it started, a folder "
    "that cannot be written), 2 bad usage or a missing tool (gdcmconv without "
    "--install-tools)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("suite", nargs="?", choices=("codec", "scale"), default="codec",
        help="codec: against gdcmconv (default); scale: discovery on many files")  # fmt: skip
    add(
        "--scale-files", type=positive, nargs="+", default=[10_000, 100_000], metavar="N",
        help="scale: archive sizes in files (10000 100000)",
    )  # fmt: skip
    add("--files-per-study", type=positive, default=5, metavar="N", help="scale: (5)")
    add("--new-share", type=float, default=0.01, metavar="F", help="scale: new files (0.01)")
    add("--new-files", type=positive, metavar="N", help="scale: this many new files instead")
    add("--catalogue-server", metavar="URL", help="scale: PostgreSQL server (default SQLite)")
    add("--s3", action="store_true", help="scale: the landing area on a loopback S3 server")
    add("--dag", action="store_true", help="scale: a backfill on a real scheduler, not discovery")
    add("--backfill-studies", type=positive, default=300, metavar="N", help="scale --dag: (300)")
    add("--backfill-days", type=positive, default=3, metavar="N", help="scale --dag: (3)")
    add("--backfill-slices", type=positive, default=2, metavar="N", help="scale --dag: (2)")
    add("--backfill-size", type=positive, default=64, metavar="PX", help="scale --dag: (64)")
    add("--redis-db", type=_count, default=12, metavar="N", help="scale --dag: broker db (12)")
    add("--mix", choices=("hospital",), help="scale --dag: the hospital mix x 13 tiers, a row "
        "per --unit-seconds (70%% radiographs, 20%% CT, 10%% MR)")  # fmt: skip
    add("--mix-studies", type=positive, nargs="+", default=[40], metavar="N",
        help="scale --dag --mix: studies a row (40), or one count per --unit-seconds value "
        "(the one-study-a-unit row costs 14 task instances a study)")  # fmt: skip
    add("--unit-seconds", type=float, nargs="+", default=[0.0, 120.0], metavar="S",
        help="scale --dag --mix: the rows' unit_seconds (0 120)")  # fmt: skip
    add("--slices", type=positive, default=400, metavar="N", help="slices per variant (400)")
    add("--size", type=positive, default=512, metavar="PX", help="rows and columns (512)")
    add("--data", type=Path, metavar="DIR", help="measure this study, not a generated one")
    add("--runs", type=positive, default=3, metavar="N", help="runs of every figure (3)")
    add_jobs(parser)
    add(
        "--gdcm-files", type=_count, default=0, metavar="N",
        help="run gdcmconv on the first N files of each variant (0: all)",
    )  # fmt: skip
    add(
        "--rss-slices", type=positive, nargs="+", default=[100, 800], metavar="N",
        help="slice counts of the peak-RSS studies (100 800)",
    )  # fmt: skip
    add("--rss-size", type=positive, default=512, metavar="PX", help="their size (512)")
    add("--rss-tier", default="j2k-lossless", metavar="NAME", help="their tier (j2k-lossless)")
    add(
        "--dag-slices", type=_count, default=40, metavar="N",
        help="slices of the study the DAG runs on (40; 0: skip the DAG figure)",
    )  # fmt: skip
    add(
        "--out", type=Path, default=Path("bench/results.json"), metavar="FILE",
        help="where the results go (bench/results.json)",
    )  # fmt: skip
    add(
        "--strategies", nargs="+", default=["layered", "per_tier"], metavar="NAME",
        help="unit-of-work strategies, the first also with --jobs 1 (layered per_tier)",
    )  # fmt: skip
    add("--work", type=Path, metavar="DIR", help="scratch folder, kept (default: a temporary one)")
    add("--gdcmconv", metavar="PATH", help="gdcmconv to run (default: the one on PATH)")
    add(
        "--install-tools", action="store_true",
        help="when gdcmconv is missing, apt-get install libgdcm-tools (as root, else sudo -n); "
        "without it a missing gdcmconv stops the bench with what to install",
    )  # fmt: skip
    add(
        "--quality", action="store_true",
        help="only the quality-targeted tiers against the fixed rates (issue #15), on a noisy "
        "CT of --slices x --size (or --data), in this process; writes --out",
    )  # fmt: skip
    add(
        "--noise-hu", type=float, metavar="HU",
        help="with --quality: the generated CT's extra noise (50: low dose); with --frontier "
        f"({FRONTIER_NOISE_HU:g})",
    )  # fmt: skip
    add(
        "--frontier", nargs="*", type=Path, metavar="FILE",
        help="only the bound tiers' rate-distortion frontier (issue #27): per codec family and "
        f"bound, on the sample CT ({FRONTIER_SLICES} x {FRONTIER_SIZE}^2) and on FILEs "
        "(files or folders, one group), in this process; writes --out",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.suite == "scale":
        return _scale(args)
    from rich.console import Console

    from dcmtier.bench.run import BenchConfig, run_bench
    from dcmtier.bench.table import print_table
    from dcmtier.cli import EXIT_OK
    from dcmtier.errors import ConfigError
    from dcmtier.records import STRATEGIES
    from dcmtier.tiers import get_tier
    from dcmtier.work.batch import default_jobs

    if args.quality:
        return _quality(args)
    if args.frontier is not None:
        return _frontier(args)
    get_tier(args.rss_tier)
    unknown = sorted(set(args.strategies) - set(STRATEGIES))
    if unknown:
        raise ConfigError(f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}")
    config = BenchConfig(
        slices=args.slices,
        size=args.size,
        runs=args.runs,
        jobs=args.jobs or default_jobs(),
        gdcm_files=args.gdcm_files,
        rss_slices=tuple(args.rss_slices),
        rss_size=args.rss_size,
        rss_tier=args.rss_tier,
        dag_slices=args.dag_slices,
        strategies=tuple(dict.fromkeys(args.strategies)),
        data=args.data,
        work=args.work,
        out=args.out,
        gdcmconv=args.gdcmconv,
        install=args.install_tools,
    )
    console = Console() if sys.stdout.isatty() else Console(width=160)
    results = run_bench(config, echo=lambda line: console.print(line, style="dim"))
    print_table(results, console)
    console.print(f"wrote {config.out}")
    return EXIT_OK


def _quality(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from rich.console import Console

    from dcmtier.bench.quality import measure_folder
    from dcmtier.cli import EXIT_OK
    from dcmtier.sample import write_ct_series
    from dcmtier.versions import software_versions

    console = Console() if sys.stdout.isatty() else Console(width=160)
    with tempfile.TemporaryDirectory(prefix="dcmtier-quality-") as scratch:
        folder = args.data
        if folder is None:
            folder = Path(scratch) / "study"
            write_ct_series(
                folder, slices=args.slices, rows=args.size, columns=args.size,
                noise_hu=_noise(args, QUALITY_NOISE_HU),
            )  # fmt: skip
        results = measure_folder(folder, echo=lambda line: console.print(line, style="dim"))
    results["study"] = {"data": str(args.data) if args.data else None, "slices": args.slices,
                        "size": args.size, "noise_hu": _noise(args, QUALITY_NOISE_HU)}  # fmt: skip
    results["software"] = software_versions()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"quality_tiers": results}, indent=2) + "\n")
    for name, row in results["tiers"].items():
        factor = row["bytes_factor"]
        console.print(
            f"{name}: {row['bytes']} bytes = "
            + (f"{factor:.3f}x {row['best_fixed_rate']}" if factor else "no fixed rate meets it")
            + f"; CPU {row['cpu_factor']:.2f}x one layered encode "
            f"({row['decodes_per_frame']:.1f} decodes a frame)"
        )
    console.print(f"wrote {args.out}")
    return EXIT_OK


def _noise(args: argparse.Namespace, default: float) -> float:
    return float(args.noise_hu) if args.noise_hu is not None else default


def _frontier(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from dcmtier.bench.frontier import format_table, measure_frontier
    from dcmtier.cli import EXIT_OK
    from dcmtier.discovery.files import find_files
    from dcmtier.sample import write_ct_series
    from dcmtier.versions import software_versions

    noise = _noise(args, FRONTIER_NOISE_HU)
    groups: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dcmtier-frontier-") as scratch:
        sample = write_ct_series(
            Path(scratch), slices=FRONTIER_SLICES, rows=FRONTIER_SIZE, columns=FRONTIER_SIZE,
            noise_hu=noise,
        )  # fmt: skip
        name = f"sample CT {FRONTIER_SLICES}x{FRONTIER_SIZE}^2, noise {noise:g} HU"
        groups[name] = measure_frontier(sample, echo=lambda line: print(line, file=sys.stderr))
    given = find_files(args.frontier)
    if given:
        groups["given files"] = measure_frontier(given)
    for name, result in groups.items():
        print("\n".join(format_table(name, result)) + "\n")
    out = args.out if args.out != Path("bench/results.json") else Path("bench/frontier.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    body = {"frontier": groups, "software": software_versions(), "cpus": os.cpu_count()}
    out.write_text(json.dumps(body, indent=1) + "\n")
    print(f"wrote {out}")
    return EXIT_OK


def _scale(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from contextlib import nullcontext

    from dcmtier.bench.scale import run_discovery
    from dcmtier.cli import EXIT_OK
    from dcmtier.versions import software_versions

    out = args.out if args.out != Path("bench/results.json") else Path("bench/scale.json")
    body: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        if args.dag and args.mix:
            from dcmtier.bench.scale_dag import run_mix

            body["mix"] = run_mix(
                Path(folder), studies=list(args.mix_studies), days=args.backfill_days,
                unit_seconds=list(args.unit_seconds), redis_db=args.redis_db, echo=print,
            )  # fmt: skip
        elif args.dag:
            from dcmtier.bench.scale_dag import run_backfill

            body["dag"] = run_backfill(
                Path(folder), studies=args.backfill_studies, days=args.backfill_days,
                slices=args.backfill_slices, size=args.backfill_size, redis_db=args.redis_db,
                echo=print,
            )  # fmt: skip
        else:
            from dcmtier.bench.scale import s3_server

            with s3_server() if args.s3 else nullcontext() as s3:
                body["discovery"] = run_discovery(
                    Path(folder), list(args.scale_files), per_study=args.files_per_study,
                    new_share=args.new_share, new_files=args.new_files,
                    server=args.catalogue_server, echo=print, s3=s3,
                )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    body.update({"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                 "software": software_versions()})  # fmt: skip
    out.write_text(json.dumps(body, indent=1, sort_keys=True))
    print(f"wrote {out}")
    return EXIT_OK
