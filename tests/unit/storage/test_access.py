"""Reading one output by its location: a path, a file:// URI or a store URL (fsspec's
in-memory filesystem here; S3 in tests/unit/ui/test_app_s3.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dcmtier.errors import StorageError
from dcmtier.storage import access
from dcmtier.storage.store import Store


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The same 3 MiB in a local file and in an object."""
    local = tmp_path / "out" / "packages" / "1.2.3" / "j2k-r20.zip"
    local.parent.mkdir(parents=True)
    local.write_bytes(bytes(range(256)) * (3 * 4096 + 7))
    store = Store.open("memory://dcmtier-test-access/out")
    store.put(local, "packages/1.2.3/j2k-r20.zip")
    yield local, store.url_of("packages/1.2.3/j2k-r20.zip")
    store.remove("")


def test_a_path_a_file_uri_and_a_store_url_read_the_same_bytes(
    stored: tuple[Path, str], tmp_path: Path
) -> None:
    local, url = stored
    expected = local.read_bytes()
    for location in (str(local), local.as_uri(), url):
        assert access.read_bytes(location) == expected
        assert b"".join(access.chunks(location)) == expected
        assert access.is_file(location)
        assert access.version(location)[0] == len(expected)
    assert len(list(access.chunks(url))) == 4  # streamed, 1 MiB at a time
    copy = access.fetch(url, tmp_path / "fetched", "a.zip")
    assert copy == tmp_path / "fetched" / "a.zip" and copy.read_bytes() == expected
    assert access.fetch(local.as_uri(), tmp_path / "x", "b.zip") == local  # no copy


def test_the_output_root_of_a_package_is_three_levels_up_as_a_path_or_a_url(
    stored: tuple[Path, str],
) -> None:
    local, url = stored
    assert access.parent(str(local), 3) == str(local.parents[2])
    assert access.parent(url, 3) == "memory://dcmtier-test-access/out"
    assert access.join("s3://b/out", "quality", "tier=x") == "s3://b/out/quality/tier=x"


def test_a_missing_object_is_no_file_and_reading_it_raises_a_storage_error(
    stored: tuple[Path, str],
) -> None:
    _, url = stored
    missing = url.replace("j2k-r20", "j2k-r50")
    assert not access.is_file(missing)
    assert access.version(missing) == (0, "")
    with pytest.raises(StorageError, match="j2k-r50"):
        access.read_bytes(missing)
