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
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

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


EPILOG = (
    "list: one line per study (size, files, last written) and a total; prune: one line per "
    "study deleted (or, with --dry-run, that would be) and a total; --json: one JSON object "
    "per study instead, no total. Exit status: 0 done, 1 the object store is unreachable or "
    "refused a request, 2 bad usage (an unknown URL scheme, --out naming a file)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--json", action="store_true", help="one JSON object per study")


def run(args: argparse.Namespace) -> int:
    from dcmtier.errors import ConfigError
    from dcmtier.storage.store import Store, is_remote, local_root
    from dcmtier.work.cache import cached_on_store, cached_studies, prune, prune_store
    from dcmtier.work.layout import Layout

    if not is_remote(args.out):
        layout = Layout(local_root(args.out) if "://" in args.out else Path(args.out))
        if layout.root.exists() and not layout.root.is_dir():
            raise ConfigError(f"--out {args.out} is a file, not a folder")
        return _act(
            args, str(layout.layer_cache), partial(cached_studies, layout), partial(prune, layout)
        )
    store = Store.open(args.out)
    return _act(
        args, store.url_of("cache/layered"), partial(cached_on_store, store),
        partial(prune_store, store),
    )  # fmt: skip


def _act(
    args: argparse.Namespace,
    where: str,
    listed: Callable[[], list[CachedStudy]],
    pruning: Callable[..., list[CachedStudy]],
) -> int:
    from dcmtier.cli import EXIT_OK, print_json

    if args.action == "list":
        found = listed()
        for cached in found:
            if args.json:
                print_json(_row(cached))
                continue
            print(
                f"{cached.study_uid}  {cached.files} files  {_mb(cached.bytes)}  "
                f"last written {cached.modified:%Y-%m-%d %H:%M:%S} UTC"
            )
        if not args.json:
            print(_total("cached", found, where))
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    pruned = pruning(older_than=args.older_than, dry_run=args.dry_run)
    for cached in pruned:
        if args.json:
            print_json({**_row(cached), "action": verb})
        else:
            print(f"{verb} {cached.study_uid}  {_mb(cached.bytes)}")
    if not args.json:
        print(_total(verb, pruned, where))
    return EXIT_OK


def _row(cached: CachedStudy) -> dict[str, object]:
    return {
        "study_uid": cached.study_uid, "files": cached.files, "bytes": cached.bytes,
        "last_written": f"{cached.modified:%Y-%m-%dT%H:%M:%SZ}",
    }  # fmt: skip


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _total(verb: str, studies: Sequence[CachedStudy], where: str) -> str:
    size = sum(c.bytes for c in studies)
    return f"{verb}: {len(studies)} studies, {_mb(size)} under {where}"
