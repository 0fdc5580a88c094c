"""What the DAG's work tasks do with discovery's items, runnable without Airflow.

``run_pair`` runs the unit of work for one study x tier of the run's plan; ``prepare_layers``
makes a study's layered J2K codestreams once for its tier tasks (a work unit's tasks,
`dcmtier.orchestration.units`, call them for each of its studies). Both read the study's
manifest that discovery wrote under ``<output>/work/<run id>/``: the DAG's mapped items are keys
(study UID, tier), never file lists. A manifest names files by file key and ``file_locations``
id; the catalogue gives the location (the only place that holds it), and logs name files by key.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dcmtier.catalogue import Catalogue, JobContext, resolve_url
from dcmtier.catalogue.sources import file_digest
from dcmtier.codec.candidates import Candidates
from dcmtier.codec.layering import cut_tiers
from dcmtier.codec.pixels import SourceImage, read_source
from dcmtier.codec.policy import Policy
from dcmtier.discovery.landing import stage
from dcmtier.discovery.plan import read_manifest, safe_name
from dcmtier.errors import CatalogueError, DcmtierError
from dcmtier.records import LAYERED, Study, name_by_key
from dcmtier.storage.dicomweb import is_dicomweb
from dcmtier.tiers import Tier, layered_tiers, resolve_tiers
from dcmtier.work.config import RunConfig
from dcmtier.work.publish import OutputRoot
from dcmtier.work.sources import cache_file, forget, index_for, write_cache
from dcmtier.work.study import process_study

log = logging.getLogger(__name__)

FAILURES_IN_XCOM = 20  # a study x tier's summary keeps this many failure lines


def run_pair(
    study_uid: str,
    tier: str,
    *,
    output: Path | str | OutputRoot,
    context: JobContext,
    catalogue_url: str | None = None,
    jobs: int = 1,
    on_gate_failure: str | None = None,
    candidates: Candidates | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, Any] | None:
    """Run the unit of work for one study x tier of the run's plan; None when the plan has no
    such pair (the cross product of the run's studies and tiers holds pairs already done).

    Raises on infrastructure errors (the task retries). The run's claim on the pair is released
    once a result is recorded. A frame that breaks its gate is a quality outcome handled by
    ``on_gate_failure`` (the DAG param; None: the default policy's ``fallback``), never an
    error: nothing is raised for it, so it is never retried and never fails the run.
    ``candidates`` (the DAG params of that name and ``viewers``) restricts the codecs of the
    tiers that choose one per instance.

    On an output root on object storage the work happens in this worker's scratch folder and
    the finished study x tier is published to the store (``dcmtier.work.publish``). An open
    ``catalogue`` (a work unit's, shared by its studies) is used and left open; else one is
    opened at ``catalogue_url`` for this pair.
    """
    root = output if isinstance(output, OutputRoot) else OutputRoot.of(output)
    manifest = read_manifest(root.location, context.run_id, study_uid)
    if tier not in manifest["tiers"]:
        return None
    layout = root.layout
    staging = _staging(root, context.run_id, f"{study_uid}-{tier}")
    own = catalogue is None
    if catalogue is None:
        catalogue = Catalogue.connect(resolve_url(catalogue_url, root.data_dir(catalogue_url)))
    try:
        study = _staged_study(manifest, staging, catalogue)
        if str(manifest.get("strategy", LAYERED)) == LAYERED:
            root.fetch_layers(study.uid)
        sources = None
        if _shares_sources(root, manifest):
            shared = cache_file(root.layout.source_cache, study.uid)
            sources = index_for(shared, {path: study.uri(path) for path in study.files})
        run = RunConfig(
            layout,
            context.run_id,
            jobs=jobs,
            policy=Policy().with_gate_action(on_gate_failure).with_candidates(candidates),
            strategy=str(manifest.get("strategy", LAYERED)),
            layer_tiers=tuple(resolve_tiers(list(manifest.get("layer_tiers") or [tier]))),
            catalogue=catalogue,
            context=context,
            publisher=root.publisher,
        )
        (result,) = process_study(study, resolve_tiers([tier]), run, sources=sources)
        catalogue.release_claims(context.run_id, [(study_uid, tier)])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if own:
            catalogue.close()
        forget(cache_file(root.layout.source_cache, study_uid))
        if root.layer_cache == "store":
            root.drop_layers(study_uid, on_store=False)  # the store keeps them
    summary = result.as_dict()
    summary["failures"] = summary["failures"][:FAILURES_IN_XCOM]
    return summary


def prepare_layers(
    study_uid: str,
    *,
    output: Path | str | OutputRoot,
    run_id: str,
    catalogue_url: str | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Read a study's sources once for its tier tasks: encode its layered J2K codestreams
    into the cache they cut from, and keep what they need of each source in the study's
    source cache (``work.sources``), so that they neither read nor parse the sources again.

    On an output root on object storage the layered cache is put on the store
    (``cache/layered/``) unless the root keeps it per worker; the source cache is kept only
    where the layered cache stays in the worker's scratch (a local root, or
    ``DCMTIER_LAYER_CACHE=worker``): a tier task on another worker reads the sources. Bad
    input is left for the tier tasks to report (they read the same files); only
    infrastructure errors raise.
    """
    root = output if isinstance(output, OutputRoot) else OutputRoot.of(output)
    manifest = read_manifest(root.location, run_id, study_uid)
    names = list(manifest.get("layer_tiers") or [])
    tiers = layered_tiers(resolve_tiers(names)) if names else []
    summary: dict[str, Any] = {"study_uid": study_uid, "encoded": 0, "skipped": 0}
    layered = manifest.get("strategy") == LAYERED and len(tiers) >= 2
    share = _shares_sources(root, manifest)
    if not layered:
        summary["note"] = "no layered encode: fewer than two J2K rate tiers"
    if not layered and not share:
        return summary
    staging = _staging(root, run_id, f"{study_uid}-layers")
    if catalogue is not None:  # a work unit's, left open
        study = _staged_study(manifest, staging, catalogue)
    else:
        opened = Catalogue.connect(resolve_url(catalogue_url, root.data_dir(catalogue_url)))
        try:
            study = _staged_study(manifest, staging, opened)
        finally:
            opened.close()
    started = time.perf_counter()
    try:
        read = _read_sources(
            study, summary, root.layout.layer_cache, tiers if layered else [], keep=share
        )
        if share:
            summary["sources_cached"] = write_cache(
                cache_file(root.layout.source_cache, study.uid), read
            )
        else:
            for _ in read:
                pass
        summary["encode_s"] = round(time.perf_counter() - started, 3)
        if layered and root.store is not None and root.layer_cache == "store":
            started = time.perf_counter()
            summary["cached_objects"] = root.keep_layers(study.uid)
            summary["upload_s"] = round(time.perf_counter() - started, 3)
            root.drop_layers(study.uid, on_store=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _read_sources(
    study: Study, summary: dict[str, Any], cache: Path, tiers: Sequence[Tier], *, keep: bool
) -> Iterator[tuple[str, Path, SourceImage, str]]:
    """Each readable source of ``study`` once, its layered codestreams encoded into ``cache``
    (with two or more ``tiers``; one cut made, the tier tasks make theirs); with ``keep``,
    yielded with its location and SHA-256 for the source cache."""
    for path in study.files:
        try:
            source = read_source(path)
            if tiers:
                cut_tiers(source, tiers, cache, only={tiers[0].name})
                summary["encoded"] += 1
        except DcmtierError as exc:
            key = study.key(path)
            reason = name_by_key(str(exc), path, key)
            log.info("study %s: no layered encode for %s: %s", study.uid, key, reason)
            summary["skipped"] += 1
            continue
        if keep and source.native is not None:
            yield study.uri(path), path, source, file_digest(path)[1]


def _shares_sources(root: OutputRoot, manifest: Mapping[str, Any]) -> bool:
    """Whether the study's tier tasks share one read of its sources (``work.sources``): two
    or more tiers, and a cache that stays where the tasks run (a local output root, or a
    remote one whose layered cache is kept per worker)."""
    many = len(manifest.get("tiers") or []) >= 2
    return many and (root.publisher is None or root.layer_cache == "worker")


def _staging(root: OutputRoot, run_id: str, name: str) -> Path:
    """A task's staging folder, ``staging/<run>--<name>``: one level, so that removing it
    leaves no empty folder behind (a folder per run would stay after its last task)."""
    return root.layout.root / "staging" / f"{safe_name(run_id)}--{name}"


def _staged_study(manifest: Mapping[str, Any], staging: Path, catalogue: Catalogue) -> Study:
    """The study of a manifest, its files found through the catalogue's location ids, remote
    files staged into ``staging`` (a DICOMweb instance with its arrival as its time, the same
    for each task that stages it)."""

    entries = manifest["files"]
    found = catalogue.locations(int(e["location"]) for e in entries)
    missing = [e["key"] for e in entries if int(e["location"]) not in found]
    if missing:
        raise CatalogueError(
            f"study {manifest['study_uid']}: the catalogue has no location for {len(missing)} "
            f"file(s) of its manifest (first: {missing[0]}); run discovery again"
        )
    uris = [found[int(e["location"])][1] for e in entries]
    archived = [u for u in uris if is_dicomweb(u)]  # no time of their own: their arrival
    arrivals = catalogue.landing_arrivals(archived) if archived else None
    paths = stage([_landing_uri(u) for u in uris], staging, arrivals)
    sop_uids = {p: str(e.get("sop_uid") or "") for p, e in zip(paths, entries, strict=True)}
    keys = {p: str(e["key"]) for p, e in zip(paths, entries, strict=True)}
    recorded = {p: u for p, u in zip(paths, uris, strict=True) if not u.startswith("file:")}
    return Study(manifest["study_uid"], tuple(paths), sop_uids, recorded, keys)


def _landing_uri(location: str) -> str:
    """A recorded location as the landing area names it (a ``file://`` URI as a local path)."""
    if location.startswith("file://"):
        return str(Path(unquote(urlparse(location).path)))
    return location
