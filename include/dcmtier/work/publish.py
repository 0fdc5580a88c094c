"""Publishing one finished study x tier from a worker's local scratch layout to object storage.

The unit of work writes into a local layout as it does for a local output root (derived files
verified after writing, the Parquet partition, the ZIP, quarantine copies); `Publisher.publish`
then puts that study x tier on the store in two phases:

1. **stage**: every file is uploaded under ``work/publish/<study>/<tier>/<attempt>/`` plus its
   key (the ZIP in parts when large). An upload that fails here leaves nothing under the final
   keys; the next attempt first deletes what an earlier one staged and aborts its unfinished
   multipart uploads.
2. **commit**: server-side copies put each staged object under its final key (derived files,
   the partition and quarantine copies first, the package last), then the staging prefix is
   deleted. Only then does the caller record the study x tier in the catalogue, the commit
   point readers go by: every object the catalogue names is complete, and a package present
   under ``packages/`` means its tier's derived objects and partition are in place.
3. **prune**, after the commit point: objects of the study x tier that the new result does
   not name are deleted, as the catalogue's rows for them were replaced. These are outputs an
   earlier run kept and the quality gate now rejects (``on_gate_failure`` reject: a rejected
   output is never left on the store as if kept), outputs of instances that now fail, and the
   package of a tier that has no member left.

Objects are rewritten whole, so a rerun gives the same keys with the same bytes (a ZIP, made
deterministically, keeps its ETag). Keys hold UIDs, tiers and file keys only.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dcmtier.errors import ConfigError
from dcmtier.outputs import uid_name
from dcmtier.records import StudyTierResult
from dcmtier.storage.store import Store, is_remote, local_root, scratch_root
from dcmtier.work.layout import Layout
from dcmtier.work.quarantine import UNIDENTIFIED

log = logging.getLogger(__name__)

STAGING = "work/publish"
LAYER_CACHE_CHOICES = ("store", "worker")


@dataclass(frozen=True)
class OutputRoot:
    """Where a run's outputs go: a local folder, or an object store with this worker's scratch.

    ``layout`` is where the unit of work writes: the folder itself, or the scratch folder whose
    results ``publisher`` puts on the store. ``layer_cache`` says where the layered
    codestreams of a remote root are kept between the encode task and the tier tasks:
    ``store`` (``cache/layered/`` on the store, which any host reads) or ``worker`` (the
    worker's scratch only).
    """

    location: str
    layout: Layout
    publisher: Publisher | None = None
    layer_cache: str = "store"

    @classmethod
    def of(cls, location: str | Path, *, layer_cache: str = "store") -> OutputRoot:
        if layer_cache not in LAYER_CACHE_CHOICES:
            raise ConfigError(
                f"layer cache must be one of {LAYER_CACHE_CHOICES}, not {layer_cache!r}"
            )
        if not is_remote(location):
            text = str(location)
            root = local_root(text) if "://" in text else Path(text)  # a path: as given
            return cls(str(root), Layout(root))
        store = Store.open(str(location))
        scratch = Layout(scratch_root(store.url))
        return cls(store.url, scratch, Publisher(store, scratch), layer_cache)

    @property
    def store(self) -> Store | None:
        return self.publisher.store if self.publisher else None

    def data_dir(self, catalogue_url: str | None) -> Path:
        """The folder of the embedded SQLite catalogue; a remote root needs an explicit URL."""
        if self.publisher is not None and not catalogue_url:
            raise ConfigError(
                f"{self.location}: an output on object storage needs a catalogue URL "
                "(--catalogue, $DCMTIER_CATALOGUE_URL or the dcmtier_catalogue connection); "
                "SQLite cannot live on a store"
            )
        return self.layout.root

    def fetch_layers(self, study_uid: str) -> int:
        """Bring the study's layered codestreams from the store into scratch; count them."""
        store = self.store
        if store is None or self.layer_cache != "store":
            return 0
        prefix = self._cache_key(study_uid)
        missing = [k for k in store.keys(prefix) if not (self.layout.root / k).exists()]
        store.download(missing, self.layout.root)
        return len(missing)

    def keep_layers(self, study_uid: str) -> int:
        """Put the study's layered codestreams from scratch on the store; count them."""
        store = self.store
        folder = self.layout.layer_cache / uid_name(study_uid)
        if store is None or self.layer_cache != "store" or not folder.is_dir():
            return 0
        have = store.keys(self._cache_key(study_uid))
        files = [p for p in sorted(folder.iterdir()) if p.is_file() and _visible(p)]
        new = [p for p in files if self._key_of(p) not in have]
        store.put_many([(p, self._key_of(p)) for p in new])  # each object complete or absent
        return len(new)

    def drop_layers(self, study_uid: str, *, on_store: bool) -> None:
        """Remove the study's layered codestreams from scratch (and from the store)."""
        if self.publisher is None:
            return
        shutil.rmtree(self.layout.layer_cache / uid_name(study_uid), ignore_errors=True)
        if on_store and self.store is not None:
            self.store.remove(self._cache_key(study_uid))

    def _cache_key(self, study_uid: str) -> str:
        return self._key_of(self.layout.layer_cache / uid_name(study_uid)) + "/"

    def _key_of(self, path: Path) -> str:
        return path.relative_to(self.layout.root).as_posix()


@dataclass(frozen=True)
class Publisher:
    """Puts study x tier results written under ``scratch`` onto ``store``."""

    store: Store
    scratch: Layout

    def fetch_known(self, study_uid: str, tiers: Sequence[str]) -> None:
        """Bring what the store knows of the study into scratch before an attempt: its
        quarantine copies (a new copy never takes the name of a different file already
        quarantined), and each tier's package and quality partition (``work.carry`` carries
        over the members this attempt does not process, their files restored from the ZIP)."""
        name = uid_name(study_uid)
        prefix = f"quarantine/{name}/"
        wanted = [k for k in self.store.keys(prefix) if not (self.scratch.root / k).exists()]
        packages = self.store.keys(f"packages/{name}/")
        for tier in tiers:
            package = self._key(self.scratch.package(study_uid, tier))
            if package in packages:  # the store's, not a copy an earlier attempt left here
                wanted += [package, *self.store.keys(f"quality/tier={tier}/study={name}/")]
            else:  # never committed: what a failed attempt left in scratch is not known
                self.scratch.package(study_uid, tier).unlink(missing_ok=True)
        self.store.download(wanted, self.scratch.root)

    def publish(self, result: StudyTierResult) -> list[str]:
        """Stage, then commit, every file of ``result``; name its objects by URL in it; return
        the keys put."""
        started = time.perf_counter()
        files = self._files(result)
        package = self._key(result.package) if result.package else None
        prefix = f"{STAGING}/{uid_name(result.study_uid)}/{result.tier}"
        self.store.remove(f"{prefix}/")  # what an earlier, failed attempt staged
        staged = f"{prefix}/{secrets.token_hex(8)}"
        small = [k for k in files if k != package]
        self.store.put_many([(self.scratch.root / k, f"{staged}/{k}") for k in small])
        if package is not None:  # streamed from disk, in parts when large
            self.store.put(self.scratch.root / package, f"{staged}/{package}")
        self.store.copy([(f"{staged}/{k}", k) for k in files if k != package])
        if package is not None:
            self.store.copy([(f"{staged}/{package}", package)])
        self.store.remove(f"{prefix}/")
        self._relocate(result)
        log.info(
            "published study %s tier %s: %d objects, %d bytes in %.2f s",
            result.study_uid, result.tier, len(files),
            sum((self.scratch.root / k).stat().st_size for k in files),
            time.perf_counter() - started,
        )  # fmt: skip
        return files

    def publish_unidentified(self) -> int:
        """Put new copies under ``quarantine/_unidentified/`` on the store (each a single
        object, named by its file key); count them."""
        folder = self.scratch.quarantine / UNIDENTIFIED
        if not folder.is_dir():
            return 0
        have = self.store.keys(f"{self._key(folder)}/")
        new = [p for p in sorted(folder.iterdir()) if p.is_file() and _visible(p)]
        new = [p for p in new if self._key(p) not in have]
        for path in new:
            self.store.put(path, self._key(path))
        shutil.rmtree(folder, ignore_errors=True)
        return len(new)

    def prune(self, result: StudyTierResult, published: Sequence[str]) -> list[str]:
        """Delete the study x tier's objects that ``publish`` did not put (``published``, the
        keys it returned; call it once the catalogue has recorded ``result``); return them."""
        study, tier, name = result.study_uid, result.tier, uid_name(result.study_uid)
        named = set(published)
        package = self._key(self.scratch.package(study, tier))
        found = [
            *self.store.keys(f"derived/{tier}/{name}/"),
            *self.store.keys(f"quality/tier={tier}/study={name}/"),
            *[k for k in self.store.keys(f"packages/{name}/") if k == package],
        ]
        stale = sorted(k for k in found if k not in named)
        self.store.delete(stale)
        if stale:
            log.info("study %s tier %s: %d object(s) no longer made deleted from the store",
                     study, tier, len(stale))  # fmt: skip
        return stale

    def clear(self, study_uid: str, tier: str) -> None:
        """Remove the local copies of a published study x tier from scratch."""
        name = uid_name(study_uid)
        for folder in (
            self.scratch.derived / tier / name,
            self.scratch.quality / f"tier={tier}" / f"study={name}",
        ):
            shutil.rmtree(folder, ignore_errors=True)
        self.scratch.package(study_uid, tier).unlink(missing_ok=True)

    def _files(self, result: StudyTierResult) -> list[str]:
        """Keys of the result's local files: derived outputs, partition, quarantine, package.

        The derived files are those under the study x tier's folder in scratch, which after
        the attempt holds exactly the package's members (``work.carry.remove_unpackaged``):
        this attempt's outputs and the members carried over from the earlier package.
        """
        name = uid_name(result.study_uid)
        derived = self.scratch.derived / result.tier / name
        paths = sorted(p for p in derived.rglob("*") if p.is_file() and _visible(p))
        if result.quality_partition:
            paths.append(Path(result.quality_partition))
        quarantine = self.scratch.quarantine / name
        if quarantine.is_dir():
            paths += sorted(p for p in quarantine.iterdir() if p.is_file() and _visible(p))
        if result.package:
            paths.append(Path(result.package))
        return [self._key(p) for p in paths]

    def _key(self, path: Path | str) -> str:
        return Path(path).absolute().relative_to(self.scratch.root.absolute()).as_posix()

    def _relocate(self, result: StudyTierResult) -> None:
        """Name the outputs by their URLs on the store (what the catalogue records)."""
        for r in result.results:
            if r.output:
                r.output = self.store.url_of(self._key(r.output))
        if result.quality_partition:
            result.quality_partition = self.store.url_of(self._key(result.quality_partition))
        if result.package:
            result.package = self.store.url_of(self._key(result.package))


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")
