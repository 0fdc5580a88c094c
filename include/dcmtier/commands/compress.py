"""``dcmtier compress``: compress DICOM files into tiers, verify every output by decoding it.

Sources are named by file key (SOP Instance UID, else a content hash); --show-paths also
prints their paths, which may carry patient names.

--out may be an object store URL (s3://bucket/prefix, ...; credentials from the store's
standard variables such as AWS_ENDPOINT_URL): each output is written and verified in a local
temporary folder, then put as one object at the same relative key (one PUT: an object is
whole or absent), and the local copy removed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmtier.cli import add_show_paths
from dcmtier.commands.options import add_gate_option, add_jobs
from dcmtier.records import FAILED, LAYERED, STRATEGIES, TierResult
from dcmtier.tiers import DEFAULT_TIERS, Tier

if TYPE_CHECKING:
    from dcmtier.codec.policy import Policy


EPILOG = (
    "Exit status: 0 nothing failed (gate outcomes handled by --on-gate-failure are not "
    "failures), 1 an instance failed or the object store is unreachable, 2 bad usage."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources", nargs="+", metavar="SRC",
        help="files or folders, object store URLs (s3://bucket/prefix, gs://…, az://…) or "
        "DICOMweb archives (dicomweb+https://host/dicom-web)",
    )  # fmt: skip
    parser.add_argument(
        "--tier",
        action="append",
        dest="tiers",
        metavar="NAME",
        help=f"tier to make, repeatable (default: {' '.join(DEFAULT_TIERS)})",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR",
        help="output folder, or an object store URL (each output one object)",
    )  # fmt: skip
    add_jobs(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per (source, tier)")
    parser.add_argument(
        "--policy", type=Path, metavar="FILE",
        help="policy JSON: modality rules, on_gate_failure, candidates, viewers",
    )  # fmt: skip
    parser.add_argument(
        "--strategy", choices=STRATEGIES, default=LAYERED,
        help="layered (default): J2K rate tiers cut from one layered encode per frame; "
        "per_tier: one encode per tier",
    )  # fmt: skip
    add_gate_option(
        parser,
        extra="; given, every output is measured against its source and its tier's gate "
        "applied (without it, compress verifies that outputs decode, and lossless ones exactly)",
    )
    parser.add_argument(
        "--pass-through",
        action="store_true",
        help="copy objects without pixel data (SR, RTPLAN, KO...) unchanged into each tier",
    )
    parser.add_argument(
        "--read-back",
        action="store_true",
        help="verify each output by parsing the written file with pydicom and decoding its "
        "frames (default: compare the file's bytes with those written, decode in memory)",
    )
    add_show_paths(parser)


def run(args: argparse.Namespace) -> int:
    from dcmtier.codec.policy import Policy
    from dcmtier.commands.options import check_output
    from dcmtier.discovery.landing import is_local
    from dcmtier.tiers import resolve_tiers

    tiers = resolve_tiers(args.tiers)
    policy = Policy.from_file(args.policy) if args.policy else Policy()
    with tempfile.TemporaryDirectory(prefix="dcmtier-staging-") as staging:
        out = _Output.of(args.out, Path(staging) / "out")
        if out.store is None:
            check_output(out.folder, [Path(s) for s in args.sources if is_local(s)])
        files, where = _sources(args.sources, Path(staging))
        return _compress(args, files, where, tiers, policy, out=out)


class _Output:
    """Where outputs go: ``folder`` itself, or ``folder`` first and then ``store``."""

    def __init__(self, folder: Path, store: Any = None) -> None:
        self.folder, self.store = folder, store

    @classmethod
    def of(cls, location: str, scratch: Path) -> _Output:
        from dcmtier.storage.store import Store, is_remote, local_root

        if not is_remote(location):
            return cls(local_root(location) if "://" in location else Path(location))
        return cls(scratch, Store.open(location))

    def publish(self, results: list[TierResult]) -> None:
        """Put one source's outputs on the store (each one object), then drop the copies."""
        if self.store is None:
            return
        written = [r for r in results if r.output and Path(r.output).is_file()]
        keys = [Path(str(r.output)).relative_to(self.folder).as_posix() for r in written]
        self.store.put_many([(Path(str(r.output)), k) for r, k in zip(written, keys, strict=True)])
        for result, key in zip(written, keys, strict=True):
            Path(str(result.output)).unlink()
            result.output = self.store.url_of(key)


def _sources(sources: list[str], staging: Path) -> tuple[list[Path], dict[str, str]]:
    """Local files, with the files under each URL copied into ``staging`` (named by number:
    a file's name may carry a patient's name); also where each copy came from."""
    from dcmtier.discovery.files import find_files
    from dcmtier.discovery.landing import is_local, list_files, stage

    files = find_files([Path(s) for s in sources if is_local(s)])
    where: dict[str, str] = {}
    for number, source in enumerate(s for s in sources if not is_local(s)):
        uris = [f.uri for f in list_files(source)]
        copies = stage(uris, staging / f"{number:03d}")
        where.update({str(c): u for c, u in zip(copies, uris, strict=True)})
        files += copies
    return files, where


def _compress(
    args: argparse.Namespace,
    files: list[Path],
    where: dict[str, str],
    tiers: list[Tier],
    policy: Policy,
    *,
    out: _Output,
) -> int:
    from dcmtier.cli import EXIT_FAILED, EXIT_OK, print_json
    from dcmtier.work import gating, verify, writing
    from dcmtier.work.batch import default_jobs, run_batch
    from dcmtier.work.compress import CompressConfig

    config = CompressConfig(
        out_dir=out.folder,
        policy=policy.with_gate_action(args.on_gate_failure),
        strategy=args.strategy,
        verify=verify.read_back if args.read_back else verify.in_memory,
        measure=gating.unmeasured if args.on_gate_failure is None else gating.measure,
        no_pixels=writing.copy_through if args.pass_through else writing.leave_out,
    )
    jobs = args.jobs or default_jobs()
    results: list[TierResult] = []
    with _progress(len(files), enabled=not args.json and sys.stderr.isatty()) as advance:
        for file_results in run_batch(files, tiers, config, jobs=jobs):
            out.publish(file_results)
            for result in file_results:
                result.path = where.get(str(result.path), result.path)  # a URL, not a copy
                if args.json:
                    print_json(result.as_dict(paths=args.show_paths))
            results.extend(file_results)
            advance()
    if not args.json:
        _print_table(results, show_paths=args.show_paths)
    return EXIT_FAILED if any(r.status == FAILED for r in results) else EXIT_OK


class _progress:
    """A rich progress bar on stderr, or nothing when stderr is not a terminal."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task("compressing", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()


def _print_table(results: list[TierResult], *, show_paths: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("source", "tier", "status", "pixel ratio", "file ratio", "encode ms", "reason")
    for r in results:
        table.add_row(
            r.path if show_paths and r.path else r.source,
            r.tier,
            r.status,
            f"{r.pixel_ratio:.2f}" if r.pixel_ratio else "",
            f"{r.file_ratio:.2f}" if r.file_ratio else "",
            f"{r.encode_ms:.1f}" if r.encode_ms is not None else "",
            r.reason or "",
        )
    console = Console(width=200)
    console.print(table)
    counts = Counter(r.status for r in results)
    console.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no files")
