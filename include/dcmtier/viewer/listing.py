"""The tiers, studies, files and packages under an output root, and where their sources are.

An output root is a folder or an object store URL; either way its layout is
``derived/<tier>/<study>/<series>/<sop>.dcm`` and ``packages/<study>/<tier>.zip`` (study and
series folders named by ``dcmtier.outputs.uid_name``). Sources are found through the
catalogue's file locations, by SOP Instance UID (a source's file key).
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dcmtier.storage.store import Store, is_remote, local_root

DERIVED, PACKAGES = "derived", "packages"


@dataclass(frozen=True)
class StudyTier:
    """One study's outputs of one tier: its files and its ZIP package."""

    tier: str
    study: str  # the study's folder name
    files: tuple[str, ...]  # paths or URLs, in name order
    package_bytes: int | None  # None: no package (the study x tier is not finished)


def list_outputs(
    root: str, tiers: Sequence[str] = (), studies: int = 3, only: Collection[str] = ()
) -> list[StudyTier]:
    """Up to ``studies`` studies of each tier under ``root`` (all tiers found, or ``tiers``),
    the same studies for every tier where it has them (the first in name order; only those
    whose folder is named in ``only``, when given)."""
    files, packages = _local(root) if not is_remote(root) else _remote(root)
    by_tier: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for (tier, study), found in files.items():
        by_tier[tier][study] = sorted(found)
    wanted = list(tiers) or sorted(by_tier)
    chosen: list[StudyTier] = []
    for tier in wanted:
        names = sorted(n for n in by_tier.get(tier, {}) if not only or n in only)[:studies]
        chosen += [
            StudyTier(tier, name, tuple(by_tier[tier][name]), packages.get((name, tier)))
            for name in names
        ]
    return chosen


Found = tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], int]]


def _local(root: str) -> Found:
    base = local_root(root)
    files: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in (base / DERIVED).glob("*/*/*/*.dcm"):
        tier, study = path.parts[-4], path.parts[-3]
        files[(tier, study)].append(str(path))
    packages = {
        (path.parent.name, path.stem): path.stat().st_size
        for path in (base / PACKAGES).glob("*/*.zip")
    }
    return files, packages


def _remote(root: str) -> Found:
    store = Store.open(root)
    files: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in store.keys(f"{DERIVED}/"):
        parts = key.split("/")
        if len(parts) == 5 and parts[-1].endswith(".dcm"):
            files[(parts[1], parts[2])].append(store.url_of(key))
    packages: dict[tuple[str, str], int] = {}
    for key, size in store.keys(f"{PACKAGES}/").items():
        parts = key.split("/")
        if len(parts) == 3 and parts[-1].endswith(".zip"):
            packages[(parts[1], parts[2].removesuffix(".zip"))] = size
    return files, packages


def catalogue_url(root: str, explicit: str | None) -> str | None:
    """The catalogue that knows the sources: ``explicit``, else ``$DCMTIER_CATALOGUE_URL``, else
    a local root's ``catalogue.db`` when there is one; None when there is none."""
    from dcmtier.catalogue.engine import DEFAULT_NAME, ENV_URL, default_url, normalise_url

    if explicit or os.environ.get(ENV_URL):
        return normalise_url(explicit or os.environ[ENV_URL])
    if is_remote(root):
        return None
    folder = local_root(root)
    return default_url(folder) if (folder / DEFAULT_NAME).is_file() else None


def source_locations(url: str, sop_uids: Iterable[str]) -> dict[str, str]:
    """SOP Instance UID -> where its source file was last seen, for those the catalogue knows."""
    from dcmtier.catalogue import Catalogue

    catalogue = Catalogue.connect(url)
    try:
        rows = catalogue.locate(sop_uids)  # newest first for each key
    finally:
        catalogue.close()
    found: dict[str, str] = {}
    for row in rows:
        found.setdefault(str(row["file_key"]), str(row["uri"]))
    return found


def median_study(items: Sequence[StudyTier]) -> StudyTier | None:
    """The study whose package size is the median (the lower one of an even count)."""
    sized = sorted((s for s in items if s.package_bytes is not None), key=_bytes)
    if not sized:
        return None
    low = statistics.median_low([_bytes(s) for s in sized])
    return next(s for s in sized if _bytes(s) == low)


def _bytes(item: StudyTier) -> int:
    return item.package_bytes or 0


def name_of(location: str) -> str:
    """A file's name (its SOP Instance UID + ``.dcm``), from a path or URL."""
    return Path(location.rsplit("/", 1)[-1]).name
