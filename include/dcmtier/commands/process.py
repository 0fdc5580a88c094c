"""``dcmtier process``: the unit of work the Airflow task runs, for every study under SRC.

compress -> verify -> metrics -> Parquet -> ZIP, per study x tier; failed instances are
quarantined and the study x tier reports ``partial``. A frame that breaks its tier's quality
gate is a quality outcome handled by --on-gate-failure (or the policy file's
"on_gate_failure"): fallback (default) recodes it at the highest ratio that meets the gate,
reject drops the instance's output, keep keeps it flagged.

Each study x tier is recorded in the catalogue: --catalogue URL, else $DCMTIER_CATALOGUE_URL,
else the embedded SQLite OUT/catalogue.db (created and migrated on first use; an explicit URL
must already be at the current schema: `dcmtier db upgrade --catalogue URL`).

Source files are named by file key (SOP Instance UID, else a content hash), in the output and
under OUT; --show-paths also prints their paths, `dcmtier locate KEY` finds one later.

Progress goes to stderr: bars with an ETA per study and per tier in a terminal, a plain line
every 10 s otherwise. With the layered strategy a study's layered codestreams are cached under
OUT/cache/layered/<study>/ while its tiers are made and deleted once they are all done
(`dcmtier cache` lists or prunes what an interrupted run left).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmtier.cli import add_show_paths
from dcmtier.commands.options import add_catalogue_url, add_gate_option, add_jobs
from dcmtier.tiers import DEFAULT_TIERS

if TYPE_CHECKING:
    from dcmtier.commands.progress import HasFiles
    from dcmtier.records import Study, StudyTierResult, Unidentified


EPILOG = (
    "Exit status: 0 when no instance failed and no attempt failed (gate outcomes "
    "handled by the policy - fallback, reject, keep - do not count, even when they make a "
    "study x tier partial or rejected), 1 when an instance failed (quarantined), an "
    "attempt failed or a file had no StudyInstanceUID, 2 bad usage, 130 / 143 stopped by "
    "SIGINT / SIGTERM (its attempts marked interrupted)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources", nargs="+", metavar="SRC",
        help="files or folders, object store URLs (s3://bucket/prefix, gs://…, az://…) or "
        "DICOMweb archives (dicomweb+https://host/dicom-web)",
    )  # fmt: skip
    parser.add_argument(
        "--tier", action="append", dest="tiers", metavar="NAME",
        help=f"tier, repeatable (default: {' '.join(DEFAULT_TIERS)})",
    )  # fmt: skip
    parser.add_argument(
        "--out", required=True, metavar="DIR",
        help="the output root: a folder, whose catalogue.db is the embedded catalogue, or an "
        "object store URL (needs --catalogue or $DCMTIER_CATALOGUE_URL)",
    )  # fmt: skip
    add_jobs(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per study x tier")
    parser.add_argument(
        "--policy", type=Path, metavar="FILE",
        help="policy JSON: modality rules, on_gate_failure, and the candidates (or viewers) "
        "the codec-choosing tiers may choose from",
    )  # fmt: skip
    add_gate_option(parser)
    parser.add_argument(
        "--strategy", choices=("per_tier", "layered"), default="layered",
        help="layered (default): J2K rate tiers cut from one layered encode per frame; "
        "per_tier: one encode per tier",
    )  # fmt: skip
    parser.add_argument(
        "--run-id", help="recorded in every row (default: cli-<UTC time to the microsecond>)"
    )
    where = parser.add_mutually_exclusive_group()
    add_catalogue_url(where)
    where.add_argument("--no-catalogue", action="store_true", help="record nothing in a catalogue")
    add_show_paths(parser)


def run(args: argparse.Namespace) -> int:
    from dcmtier.work.interrupt import signals_interrupt

    with signals_interrupt():  # a signal ends in `Interrupted`, which `cli.main` reports
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from dcmtier.cli import EXIT_FAILED, EXIT_OK, json_line
    from dcmtier.codec.policy import Policy
    from dcmtier.commands.options import check_output, open_catalogue
    from dcmtier.commands.progress import ProcessProgress
    from dcmtier.discovery.landing import is_local
    from dcmtier.discovery.plan import safe_name
    from dcmtier.records import FAILED, LAYERED
    from dcmtier.tiers import resolve_tiers
    from dcmtier.work.batch import default_jobs
    from dcmtier.work.cache import drop_study
    from dcmtier.work.config import RunConfig
    from dcmtier.work.publish import OutputRoot
    from dcmtier.work.quarantine import quarantine_unidentified
    from dcmtier.work.study import process_study

    tiers = resolve_tiers(args.tiers)
    policy = Policy.from_file(args.policy) if args.policy else Policy()
    policy = policy.with_gate_action(args.on_gate_failure)
    root = OutputRoot.of(args.out, layer_cache="worker")
    if root.publisher is None:  # a local folder (a store has no folder to check)
        check_output(root.layout.root, [Path(s) for s in args.sources if is_local(s)])
    # microseconds: two runs started within a second are still two attempts
    started = datetime.now(UTC)
    run_id = args.run_id or f"cli-{started:%Y%m%dT%H%M%S.%fZ}"
    layout = root.layout
    catalogue = None if args.no_catalogue else open_catalogue(args.catalogue, args.out)
    sources = _Sources(args.sources, layout.root / "staging" / safe_name(run_id))
    unidentified = sources.unidentified
    for item in unidentified:
        if item.status == FAILED:
            quarantine_unidentified(item, layout)
        _report(item, as_json=args.json, show_paths=args.show_paths)
    if root.publisher is not None:
        root.publisher.publish_unidentified()
    if catalogue is not None:
        for prefix in sources.scopes:
            under = [u for u in unidentified if u.uri.startswith(prefix) or u.uri == prefix]
            catalogue.record_unidentified(prefix, under)
    # skipped files (not DICOM, a DICOMDIR) are no fault
    worst = EXIT_FAILED if any(u.status == FAILED for u in unidentified) else EXIT_OK
    run = RunConfig(
        layout, run_id, jobs=args.jobs or default_jobs(), policy=policy,
        strategy=args.strategy, catalogue=catalogue, since=started, publisher=root.publisher,
    )  # fmt: skip
    with ProcessProgress(sources.sizes, len(tiers)) as progress, sources:
        for study in sources.studies():
            watcher = progress.start(study)
            results = process_study(study, tiers, run, watcher=watcher)
            sources.done(study)
            if args.strategy == LAYERED:  # every tier of the study is done: nothing cuts again
                drop_study(layout, study.uid)
            progress.finish(watcher)
            for result in results:
                row = _row(result, study, show_paths=args.show_paths)
                for line in [json_line(row)] if args.json else _lines(row):
                    progress.print(line)
                worst = EXIT_FAILED if failed(result) else worst
    return worst


def failed(result: StudyTierResult) -> bool:
    """Whether a study x tier had an operator's problem: a failed instance or attempt.

    Gate outcomes handled by the policy (fallback, reject, keep) are not failures, even when
    rejected outputs make the study x tier ``partial`` or ``rejected``.
    """
    return result.status == "failed" or bool(result.counts.get("failed"))


class _Sources:
    """The studies under the command's sources: local files as they are, the files under a URL
    read where they are for their headers, then staged study by study into ``staging``."""

    def __init__(self, sources: list[str], staging: Path) -> None:
        from dcmtier.discovery.files import discover
        from dcmtier.discovery.landing import is_local, location_scope
        from dcmtier.discovery.sources import find_candidates

        local = [Path(s) for s in sources if is_local(s)]
        self.local, self.unidentified = discover(local) if local else ([], [])
        self.remote = []
        for source in (s for s in sources if not is_local(s)):
            found, unidentified = find_candidates(source)
            self.remote += [found[uid] for uid in sorted(found)]
            self.unidentified += unidentified
        self.scopes = [location_scope(str(source)) for source in sources]
        self.staging = staging

    @property
    def sizes(self) -> list[HasFiles]:
        """Each study, with its files (for the progress bars' totals)."""
        return [*self.local, *self.remote]

    def studies(self) -> Iterator[Study]:
        from dcmtier.discovery.sources import stage_study

        yield from self.local
        for candidate in self.remote:
            yield stage_study(candidate, self.staging / candidate.uid)

    def done(self, study: Study) -> None:
        """Remove the staged copies of a study's remote files."""
        shutil.rmtree(self.staging / study.uid, ignore_errors=True)

    def __enter__(self) -> _Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        """Remove the run's staging folder, whatever is left in it (an error, a signal)."""
        shutil.rmtree(self.staging, ignore_errors=True)


def _report(item: Unidentified, *, as_json: bool, show_paths: bool) -> None:
    """A file that belongs to no study, named by its key (its reason starts with it)."""
    from dcmtier.cli import print_json

    row = {"status": item.status, "source": item.key, "reason": item.reason}
    if show_paths:
        row["path"] = item.uri
    if as_json:
        print_json(row)
    else:
        print(f"{item.status.upper()} {item.reason}" + (f"  [{item.uri}]" if show_paths else ""))


def _row(result: StudyTierResult, study: Study, *, show_paths: bool) -> dict[str, Any]:
    """The result as printed; with ``show_paths`` each failure also says where its file is."""
    row = result.as_dict()
    if show_paths:
        where = {study.key(p): study.uri(p) for p in study.files}
        for failure in row["failures"]:
            failure["path"] = where.get(failure["source"])
    return row


def _lines(row: dict[str, Any]) -> list[str]:
    ratio = row["pixel_bytes_in"] / row["pixel_bytes_out"] if row["pixel_bytes_out"] else 0.0
    counts = " ".join(f"{k}={v}" for k, v in row["counts"].items())
    by = f"  (made meanwhile by {row['done_by']})" if row.get("done_by") else ""
    gated = " ".join(f"{k}={v}" for k, v in row.get("gate_outcomes", {}).items())
    head = (
        f"{row['study_uid']}  {row['tier']:<14} {row['status']:<8} {counts:<24} "
        f"pixel ratio {ratio:7.2f}  package {row['package'] or '-'}{by}"
        + (f"  gate frames: {gated}" if gated else "")
    )
    lines = [head]
    for failure in row["failures"]:
        where = f"  [{failure['path']}]" if failure.get("path") else ""
        lines.append(f"    {failure['status']}: {failure['reason']}{where}")
    return lines
