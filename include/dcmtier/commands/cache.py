"""``dcmtier cache``: list or prune the layered-encode cache, OUT/cache/layered/<study>/.

With the layered strategy (the default) each study's layered J2K codestreams are kept there so
that its tier tasks share one encode and a retried tier task does not encode again.
`dcmtier process` deletes a study's cache once all its tiers are done; the DAG's summary task
deletes the run's caches when no tier task failed, and keeps them otherwise, so that clearing
and retrying a failed study x tier still finds them (the summary runs again after the retry and
deletes them then). `prune` removes what is left: everything, or with --older-than only the
studies not written to for that long. Pruning is always safe: a tier whose cache is gone
encodes again. With --out an object store URL (the DAG's output there), the cache it lists and
prunes is the one on the store, ``cache/layered/`` (credentials from the store's standard
variables).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dcmtier.work.cache import CachedStudy

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (a bare number is seconds)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not found:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 30m, 12h, 7d): {text!r}")
    number, unit = found.groups()
    return timedelta(**{UNITS[unit or "s"]: float(number)})


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="list or prune the layered-encode cache (OUT/cache/layered)",
        description=__doc__,
        epilog="Exit status: 0 done, 2 bad usage.",
    )
    parser.add_argument("action", choices=("list", "prune"), help="list: size and age per study")
    parser.add_argument(
        "--out", default=".", metavar="DIR",
        help="the output root of `dcmtier process` or the DAG's `output`, a folder or an "
        "object store URL (default: .)",
    )  # fmt: skip
    parser.add_argument(
        "--older-than", type=duration, metavar="AGE",
        help="prune only studies not written to for AGE (30m, 12h, 7d; default: all)",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="say what prune would delete")


def run(args: argparse.Namespace) -> int:
    from dcmtier.cli import EXIT_FAILED
    from dcmtier.errors import StorageError
    from dcmtier.storage.store import Store, is_remote, local_root
    from dcmtier.work.cache import cached_on_store, cached_studies, prune, prune_store
    from dcmtier.work.layout import Layout

    try:
        if not is_remote(args.out):
            layout = Layout(local_root(args.out) if "://" in args.out else Path(args.out))
            return _act(
                args, str(layout.layer_cache), partial(cached_studies, layout),
                partial(prune, layout),
            )  # fmt: skip
        store = Store.open(args.out)
        return _act(
            args, store.url_of("cache/layered"), partial(cached_on_store, store),
            partial(prune_store, store),
        )  # fmt: skip
    except StorageError as exc:
        print(f"dcmtier: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _act(
    args: argparse.Namespace,
    where: str,
    listed: Callable[[], list[CachedStudy]],
    pruning: Callable[..., list[CachedStudy]],
) -> int:
    from dcmtier.cli import EXIT_OK

    if args.action == "list":
        found = listed()
        for cached in found:
            print(
                f"{cached.study_uid}  {cached.files} files  {_mb(cached.bytes)}  "
                f"last written {cached.modified:%Y-%m-%d %H:%M:%S} UTC"
            )
        print(_total("cached", found, where))
        return EXIT_OK
    pruned = pruning(older_than=args.older_than, dry_run=args.dry_run)
    for cached in pruned:
        print(f"{'would delete' if args.dry_run else 'deleted'} {cached.study_uid}"
              f"  {_mb(cached.bytes)}")  # fmt: skip
    print(_total("would delete" if args.dry_run else "deleted", pruned, where))
    return EXIT_OK


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _total(verb: str, studies: Sequence[CachedStudy], where: str) -> str:
    size = sum(c.bytes for c in studies)
    return f"{verb}: {len(studies)} studies, {_mb(size)} under {where}"
