"""``dcmtier process`` on a DICOMweb archive that fails while instances are retrieved: a
scripted server on loopback (QIDO-RS answers, then a WADO-RS response cut short, or 503s).
The command stops with one line naming the instance and the reason, records nothing for the
study and leaves no staged file; run again against a healthy answer, it does the study."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydicom import dcmread

from dcmtier.cli import main
from dcmtier.storage import dicomweb
from tests.support import reference_file

SOURCE = reference_file("CT_small.dcm")
HEADER = dcmread(SOURCE, stop_before_pixels=True)
STUDY, SERIES, SOP = (str(HEADER[k].value) for k in ("StudyInstanceUID", "SeriesInstanceUID",
                                                     "SOPInstanceUID"))  # fmt: skip


class Archive(BaseHTTPRequestHandler):
    mode = "truncated"  # or "unavailable", "healthy"

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/dicom-web/studies":
            self._json([{"0020000D": {"vr": "UI", "Value": [STUDY]},
                         "00201208": {"vr": "IS", "Value": [1]}}])  # fmt: skip
        elif path == f"/dicom-web/studies/{STUDY}/instances":
            self._json([{"0020000D": {"vr": "UI", "Value": [STUDY]},
                         "0020000E": {"vr": "UI", "Value": [SERIES]},
                         "00080018": {"vr": "UI", "Value": [SOP]}}])  # fmt: skip
        elif self.mode == "unavailable":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + SOURCE.read_bytes()
            body += b"\r\n--b--\r\n" if self.mode == "healthy" else b""
            self.send_response(200)
            self.send_header(
                "Content-Type", 'multipart/related; type="application/dicom"; boundary=b'
            )
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _json(self, rows: list[dict[str, object]]) -> None:
        body = json.dumps(rows).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def archive(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(dicomweb, "BACKOFF_S", 0.0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Archive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"dicomweb+http://127.0.0.1:{server.server_address[1]}/dicom-web"
    server.shutdown()
    server.server_close()
    Archive.mode = "truncated"


@pytest.mark.parametrize(
    ("mode", "reason"), [("truncated", "truncated"), ("unavailable", "HTTP 503")]
)
def test_a_failed_retrieval_is_one_line_and_the_next_run_does_the_study(
    archive: str, mode: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Archive.mode = mode
    out = tmp_path / "out"
    argv = [
        "process",
        archive,
        "--tier",
        "j2k-lossless",
        "--out",
        str(out),
        "--jobs",
        "1",
        "--json",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and reason in err[0], err
    assert f"{archive}/studies/{STUDY}/series/{SERIES}/instances/{SOP}" in err[0]
    assert not list(out.rglob("*.dcm")) and not list(out.rglob("*.part"))
    with sqlite3.connect(out / "catalogue.db") as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
    Archive.mode = "healthy"
    assert main(argv) == 0
    (made,) = (out / "derived" / "j2k-lossless").rglob("*.dcm")
    assert dcmread(made).pixel_array.tolist() == dcmread(SOURCE).pixel_array.tolist()
