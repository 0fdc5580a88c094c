"""``storage.dicomweb`` and ``storage.multipart`` against scripted HTTP answers (httpx's mock
transport): retries on 5xx, truncated multipart bodies, STOW-RS refusals, credentials. The real
server is in ``tests/integration/test_dicomweb.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dcmtier.errors import ConfigError, StorageError
from dcmtier.storage import dicomweb, multipart
from dcmtier.storage.dicomweb import Credentials, Ref, Server, split_uri

URL = "dicomweb+http://pacs.test/dicom-web"
REF = Ref("1.2.3", "1.2.3.4", "1.2.3.4.5")
PAYLOAD = b"DICM" + bytes(range(256)) * 4 + b"\r\n--not-the-boundary\r\n"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dicomweb, "BACKOFF_S", 0.0)


def server(answer: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> Server:
    return Server(URL, transport=httpx.MockTransport(answer), **kwargs)  # type: ignore[arg-type]


def related(*bodies: bytes, boundary: str = "b0und", closed: bool = True) -> httpx.Response:
    parts = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + body + b"\r\n"
        for body in bodies
    )
    tail = f"--{boundary}--\r\n".encode() if closed else b""
    content_type = f'multipart/related; type="application/dicom"; boundary="{boundary}"'
    return httpx.Response(200, content=parts + tail, headers={"Content-Type": content_type})


def test_an_instance_is_retrieved_as_stored_after_a_503(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503) if len(seen) == 1 else related(PAYLOAD)

    with server(answer) as pacs:
        pacs.retrieve(REF, tmp_path / "one.dcm")
    assert (tmp_path / "one.dcm").read_bytes() == PAYLOAD
    assert seen[-1].headers["Accept"] == dicomweb.AS_STORED
    assert str(seen[-1].url) == f"http://pacs.test/dicom-web/{REF.path}"
    assert [p.name for p in tmp_path.iterdir()] == ["one.dcm"]  # the spooled response is gone


def test_a_truncated_multipart_response_leaves_no_file_and_names_the_instance(
    tmp_path: Path,
) -> None:
    with (
        server(lambda _: related(PAYLOAD, closed=False)) as pacs,
        pytest.raises(StorageError, match=r"instances/1\.2\.3\.4\.5: retrieve failed: .*truncated"),
    ):
        pacs.retrieve(REF, tmp_path / "one.dcm")
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_stays_unavailable_fails_after_the_retries_on_one_line() -> None:
    calls: list[int] = []

    def answer(_: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503)

    with server(answer, retries=3) as pacs, pytest.raises(StorageError) as raised:
        pacs.studies()
    assert len(calls) == 3
    assert str(raised.value) == f"{URL}/studies: search failed: HTTP 503 Service Unavailable"


def test_a_404_is_not_retried_but_means_nothing_found_in_a_search() -> None:
    calls: list[int] = []

    def answer(_: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404)

    with server(answer) as pacs:
        assert pacs.instances("1.2.3") == []
        with pytest.raises(StorageError, match="HTTP 404"):
            pacs.metadata("1.2.3", "1.2.3.4")
    assert len(calls) == 2


def test_searches_are_paged_until_a_short_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dicomweb, "PAGE", 2)
    offsets: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        offsets.append(request.url.params["offset"])
        start = int(request.url.params["offset"])
        rows = [
            {"0020000D": {"vr": "UI", "Value": [f"1.{n}"]}} for n in range(start, min(start + 2, 5))
        ]
        return httpx.Response(200, json=rows)

    with server(answer) as pacs:
        assert [s.uid for s in pacs.studies()] == ["1.0", "1.1", "1.2", "1.3", "1.4"]
    assert offsets == ["0", "2", "4"]


def test_stow_reports_the_instances_the_archive_refused(tmp_path: Path) -> None:
    files = [tmp_path / "a.dcm", tmp_path / "b.dcm"]
    for number, path in enumerate(files):
        path.write_bytes(PAYLOAD + bytes([number]))
    bodies: list[list[bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        boundary = multipart.boundary_of(request.headers["Content-Type"])
        bodies.append(list(multipart.iter_parts(request.content, boundary)))
        refused = {"00081198": {"vr": "SQ", "Value": [
            {"00081155": {"vr": "UI", "Value": ["1.2.9"]}, "00081197": {"vr": "US", "Value": [272]}}
        ]}}  # fmt: skip
        return httpx.Response(202, json=refused)

    with server(answer) as pacs:
        assert pacs.store(files) == ["1.2.9: reason 272"]
    assert bodies == [[p.read_bytes() for p in files]]


def test_credentials_come_from_the_environment_and_never_from_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(dicomweb.ENV_TOKEN, "t0ken")
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    with server(answer) as pacs:
        pacs.studies()
    assert seen[0].headers["Authorization"] == "Bearer t0ken"
    assert "t0ken" not in repr(dicomweb.credentials())
    with pytest.raises(ConfigError, match="credentials do not go in the URL") as raised:
        Server("dicomweb+https://alice:s3cret@pacs.test/dicom-web")
    assert "s3cret" not in str(raised.value)


def test_configured_credentials_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dicomweb.ENV_USER, "env-user")
    dicomweb.configure(Credentials("conn-user", "pw"))
    try:
        assert dicomweb.credentials() == Credentials("conn-user", "pw")
    finally:
        dicomweb.configure(None)
    assert dicomweb.credentials() == Credentials("env-user", None, None)


def test_an_instance_uri_splits_into_its_server_and_uids() -> None:
    assert split_uri(f"{URL}/{REF.path}") == (URL, REF)
    with pytest.raises(ConfigError, match="not a DICOMweb instance URL"):
        split_uri(f"{URL}/studies/1.2.3")


def test_a_multipart_body_round_trips_with_a_boundary_like_text_inside_a_part() -> None:
    content_type = 'multipart/related; type="application/dicom"; boundary=xyz'
    data = b"--xyz\r\nContent-Type: application/dicom\r\n\r\n--xy z\r\n--xyzz\r\n--xyz--\r\n"
    assert list(multipart.iter_parts(data, multipart.boundary_of(content_type))) == [
        b"--xy z\r\n--xyzz"
    ]
    with pytest.raises(StorageError, match="expected a multipart/related"):
        multipart.boundary_of("application/json")
