"""Output roots on object storage: URLs, keys, credentials from connections."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcmtier.errors import ConfigError, StorageError
from dcmtier.storage.store import (
    Store,
    connection_options,
    is_remote,
    local_root,
    part_bytes,
    read_text,
    scratch_root,
    write_text,
)


@pytest.mark.parametrize(
    ("location", "remote"),
    [("s3://b/p", True), ("gs://b", True), ("memory://x", True), ("file:///x", False),
     ("data", False), (Path("/x"), False)],
    ids=str,
)  # fmt: skip
def test_urls_with_a_store_scheme_are_remote_and_paths_are_not(
    location: str | Path, remote: bool
) -> None:
    assert is_remote(location) is remote


def test_a_file_url_and_a_path_name_the_same_local_folder(tmp_path: Path) -> None:
    assert local_root(tmp_path.as_uri()) == local_root(str(tmp_path)) == tmp_path
    with pytest.raises(ConfigError):
        local_root("s3://bucket/prefix")


def test_each_output_url_has_its_own_scratch_folder_under_dcmtier_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DCMTIER_SCRATCH", str(tmp_path))
    one, two = scratch_root("s3://a/x"), scratch_root("s3://a/y")
    assert one != two and one.parent == two.parent == tmp_path / "dcmtier-scratch"


def test_objects_are_listed_copied_and_removed_by_key_under_the_root(tmp_path: Path) -> None:
    store = Store.open("memory://dcmtier-test-store/root/")
    source = tmp_path / "a.dcm"
    source.write_bytes(b"x" * 10)
    store.put(source, "work/publish/s/t/1/derived/a.dcm")
    store.copy([("work/publish/s/t/1/derived/a.dcm", "derived/a.dcm")])
    store.remove("work/publish/s/t/")
    assert store.keys("") == {"derived/a.dcm": 10}
    assert store.url_of("derived/a.dcm") == "memory://dcmtier-test-store/root/derived/a.dcm"
    store.download(["derived/a.dcm"], tmp_path / "back")
    assert (tmp_path / "back" / "derived" / "a.dcm").read_bytes() == b"x" * 10
    store.remove("")


def test_small_texts_go_to_files_and_objects_alike(tmp_path: Path) -> None:
    for where in (str(tmp_path / "w" / "m.json"), "memory://dcmtier-test-text/w/m.json"):
        write_text(where, "{}")
        assert read_text(where) == "{}"


def test_a_failing_store_raises_one_storage_error_naming_the_object() -> None:
    store = Store.open("memory://dcmtier-test-missing")
    with pytest.raises(StorageError, match=r"read derived/none\.dcm failed"):
        store.read_bytes("derived/none.dcm")


def test_an_aws_connection_gives_s3_keys_endpoint_and_region() -> None:
    extra = {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"}
    assert connection_options("aws", "id", "secret", extra) == (
        "s3",
        {"key": "id", "secret": "secret", "endpoint_url": "http://minio:9000",
         "client_kwargs": {"region_name": "eu-west-1"}},
    )  # fmt: skip
    assert connection_options("wasb", "acct", "k", {})[0] == "abfs"
    with pytest.raises(ConfigError, match="postgres"):
        connection_options("postgres", None, None, {})


def test_the_part_size_comes_from_the_environment_and_must_be_a_positive_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DCMTIER_MULTIPART_BYTES", "6000000")
    assert part_bytes() == 6_000_000
    monkeypatch.setenv("DCMTIER_MULTIPART_BYTES", "lots")
    with pytest.raises(ConfigError):
        part_bytes()
