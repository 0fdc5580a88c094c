"""A real DICOMweb server for the tests: Orthanc (Debian ``orthanc``) with its DICOMweb plugin
(``orthanc-dicomweb``), started on loopback with its own configuration, storage and
authentication in a temporary folder. CI installs both (scripts/install-system-deps.sh) and
fails when they are missing; elsewhere the tests that need it are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread

from dcmtier.sample import write_ct_series
from tests.support import reference_file

PLUGIN_PATHS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",  # Debian's orthanc-dicomweb
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
USER, PASSWORD = "dcmtier", "orthanc-test-password"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require_orthanc() -> tuple[str, str]:
    """Orthanc's program and the DICOMweb plugin; fails in CI when missing, else skips."""
    program = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
    plugin = next((p for p in PLUGIN_PATHS if Path(p).is_file()), None)
    if program and plugin:
        return program, plugin
    message = (
        "Orthanc and its DICOMweb plugin are not installed (Debian: orthanc, orthanc-dicomweb)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}: scripts/install-system-deps.sh installs them")
    pytest.skip(message)


class Orthanc:
    """One running Orthanc: ``url`` is its DICOMweb root as dcmtier names it."""

    def __init__(self, folder: Path) -> None:
        program, plugin = require_orthanc()
        self.folder = folder
        self.port = free_port()
        storage = folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": f"dcmtier-test-{self.port}",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "DicomPort": free_port(),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        self._log = (folder / "orthanc.log").open("wb")
        self.process = subprocess.Popen(
            [program, str(folder / "orthanc.json")], stdout=self._log, stderr=subprocess.STDOUT
        )
        self.rest = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", auth=(USER, PASSWORD))
        self._wait()

    @property
    def url(self) -> str:
        return f"dicomweb+http://127.0.0.1:{self.port}/dicom-web"

    def _wait(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.folder / "orthanc.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: {log}")
            try:
                if self.rest.get("/system").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Orthanc did not answer on port {self.port} within {seconds} s")

    def upload(self, *paths: Path) -> None:
        """Store files through Orthanc's own REST API (not through dcmtier's STOW-RS)."""
        for path in paths:
            self.rest.post("/instances", content=path.read_bytes()).raise_for_status()

    def transfer_syntaxes(self) -> dict[str, str]:
        """SOP Instance UID -> transfer syntax of every instance Orthanc holds."""
        found = {}
        for orthanc_id in self.rest.get("/instances").json():
            tags = self.rest.get(f"/instances/{orthanc_id}/simplified-tags").json()
            syntax = self.rest.get(f"/instances/{orthanc_id}/metadata/TransferSyntax").text
            found[str(tags["SOPInstanceUID"])] = syntax
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.rest.close()
        self._log.close()


@contextmanager
def running_orthanc(folder: Path) -> Iterator[Orthanc]:
    server = Orthanc(folder)
    try:
        yield server
    finally:
        server.stop()


def two_studies(folder: Path) -> list[Path]:
    """The files the DICOMweb tests upload: two studies, 10 instances. Six synthetic CT
    slices (``dcmtier.sample``), and two more synthetic slices with pydicom's CT_small and
    MR_small moved into a second study."""
    first = write_ct_series(folder / "a", slices=6, rows=64, columns=64, seed=29)
    second = write_ct_series(folder / "b", slices=2, rows=64, columns=64, seed=30)
    study_uid = dcmread(second[0], stop_before_pixels=True).StudyInstanceUID
    moved = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        ds = dcmread(reference_file(name))
        ds.StudyInstanceUID = study_uid
        moved.append(folder / name)
        ds.save_as(moved[-1])
    return [*first, *second, *moved]


def credentials_env() -> dict[str, Any]:
    """The environment the command line reads the test server's credentials from."""
    return {"DCMTIER_DICOMWEB_USER": USER, "DCMTIER_DICOMWEB_PASSWORD": PASSWORD}
