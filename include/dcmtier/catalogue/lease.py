"""The heartbeat of a working process: it renews its jobs' leases and checks its holds.

It runs in a thread of its own, so a long step (one huge file, a big ZIP) never lets a lease
lapse. The work forks worker processes while it beats: a fork waits for a beat in progress to
finish (``os.register_at_fork``), so no child inherits a lock taken halfway through one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from dcmtier.catalogue.holds import Holds, Pair
from dcmtier.errors import CatalogueError

if TYPE_CHECKING:
    from dcmtier.catalogue.store import Catalogue

log = logging.getLogger(__name__)
_beating = threading.Lock()  # held during a beat; a fork waits for it
os.register_at_fork(
    before=_beating.acquire,
    after_in_parent=_beating.release,
    after_in_child=_beating.release,
)


class Lease:
    """Renews ``job_ids`` every third of the lease and verifies ``holds``, until stopped."""

    def __init__(self, catalogue: Catalogue, job_ids: Sequence[int], holds: Holds) -> None:
        self._catalogue = catalogue
        self._job_ids = list(job_ids)
        self._holds = holds
        self._stop = threading.Event()
        self.lost: list[Pair] = []
        self._thread = threading.Thread(target=self._run, name="dcmtier-lease", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self, pair: Pair) -> None:
        """Raise when another process took ``pair`` while this one's hold was lost."""
        if pair in self.lost:
            raise CatalogueError(
                f"study {pair[0]} tier {pair[1]}: lost the exclusive hold while the catalogue "
                "was unreachable, and another run took it; that run makes it"
            )

    def _run(self) -> None:
        every = self._catalogue.lease_s / 3
        while not self._stop.wait(every):
            with _beating:
                self._beat()

    def _beat(self) -> None:
        try:
            self._catalogue.renew(self._job_ids)
        except CatalogueError as exc:  # the next beat tries again; the lease has slack
            log.warning("could not renew the lease of %d job(s): %s", len(self._job_ids), exc)
        try:
            lost = self._holds.verify()
        except Exception as exc:
            log.warning("could not verify the holds: %s", exc)
            return
        for pair in lost:
            log.error("study %s tier %s: the hold was taken by another run", *pair)
        self.lost.extend(lost)
