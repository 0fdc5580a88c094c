"""The layered-encode cache, ``<output>/cache/layered/<study>/``, and the DAG's source cache,
``<output>/cache/sources/<study>.bin`` (``work.sources``): listed, dropped, pruned per study.

The ``layered`` strategy keeps each study's layered J2K codestreams there so that the study's
tier tasks (one per tier in the DAG) share one encode and a retried tier task cuts instead of
encoding again. Nothing needs a study's cache once all its tiers are done: ``dcmtier process``
drops it then, the DAG's ``summary`` task drops the run's caches when no tier task failed, and
``dcmtier cache prune`` removes what is left (a crashed run's, or by age). A missing cache is
never an error: the tier encodes again.

On an output root on object storage the DAG keeps the cache under ``cache/layered/<study>/`` on
the store (``DCMTIER_LAYER_CACHE=store``): `cached_on_store` and `prune_store` list and prune
it there.
"""

from __future__ import annotations

import shutil
import stat
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dcmtier.outputs import uid_name
from dcmtier.storage.store import Store
from dcmtier.work.layout import Layout

STORE_PREFIX = "cache/layered/"


@dataclass(frozen=True)
class CachedStudy:
    """One study's cached codestreams: how many files, how many bytes, when last written.

    ``path`` is its folder; on an object store, its key prefix relative to the output root.
    """

    study_uid: str
    path: Path
    files: int
    bytes: int
    modified: datetime


def cached_studies(layout: Layout) -> list[CachedStudy]:
    """Every study in the cache (its layered codestreams, its source cache), by study UID."""
    names = set()
    if layout.layer_cache.is_dir():
        names |= {p.name for p in layout.layer_cache.iterdir() if p.is_dir()}
    if layout.source_cache.is_dir():
        names |= {p.stem for p in layout.source_cache.glob("*.bin")}
    found = [_describe(layout, name) for name in sorted(names)]
    return [c for c in found if c is not None]


def drop_study(layout: Layout, study_uid: str) -> CachedStudy | None:
    """Delete one study's cached codestreams and sources; what was there, or None when
    nothing was."""
    name = uid_name(study_uid)  # as the layered and source caches name its folder and file
    found = _describe(layout, name)
    if found is not None:
        _remove(layout, name)
    return found


def prune(
    layout: Layout,
    *,
    older_than: timedelta | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[CachedStudy]:
    """Delete the studies' caches last written more than ``older_than`` ago (all without it)."""
    cutoff = (now or datetime.now(UTC)) - older_than if older_than is not None else None
    chosen = [c for c in cached_studies(layout) if cutoff is None or c.modified < cutoff]
    if not dry_run:
        for cached in chosen:
            _remove(layout, cached.study_uid)
    return chosen


def cached_on_store(store: Store) -> list[CachedStudy]:
    """Every study's cache under ``cache/layered/`` on ``store``, by study UID."""
    by_study: dict[str, list[tuple[int, datetime | None]]] = defaultdict(list)
    for key, listed in store.modified(STORE_PREFIX).items():
        by_study[key.removeprefix(STORE_PREFIX).split("/")[0]].append(listed)
    return [
        CachedStudy(
            study_uid=study,
            path=Path(STORE_PREFIX, study),
            files=len(objects),
            bytes=sum(size for size, _ in objects),
            modified=max((t for _, t in objects if t), default=datetime.fromtimestamp(0, UTC)),
        )
        for study, objects in sorted(by_study.items())
    ]


def prune_store(
    store: Store,
    *,
    older_than: timedelta | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[CachedStudy]:
    """`prune` for the cache on an object store."""
    cutoff = (now or datetime.now(UTC)) - older_than if older_than is not None else None
    chosen = [c for c in cached_on_store(store) if cutoff is None or c.modified < cutoff]
    if not dry_run:
        for cached in chosen:
            store.remove(f"{cached.path.as_posix()}/")
    return chosen


def _remove(layout: Layout, name: str) -> None:
    shutil.rmtree(layout.layer_cache / name, ignore_errors=True)
    (layout.source_cache / f"{name}.bin").unlink(missing_ok=True)


def _describe(layout: Layout, name: str) -> CachedStudy | None:
    """One study's cache: its layered folder and its source cache file (``work.sources``)."""
    folder = layout.layer_cache / name
    paths = [*folder.rglob("*"), layout.source_cache / f"{name}.bin"]
    stats = []
    for path in paths:
        try:
            stats.append(path.stat())
        except FileNotFoundError:  # a tier task replaced or a prune removed it meanwhile
            continue
    files = [s for s in stats if stat.S_ISREG(s.st_mode)]
    if not files and not folder.is_dir():
        return None
    newest = max((s.st_mtime for s in files), default=0.0)
    if not files:
        newest = folder.stat().st_mtime
    return CachedStudy(
        study_uid=name,
        path=folder,
        files=len(files),
        bytes=sum(s.st_size for s in files),
        modified=datetime.fromtimestamp(newest, UTC),
    )
