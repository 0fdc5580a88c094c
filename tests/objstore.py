"""The tests' S3 API server (``tests/s3server.py``) as a process they start, stop and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PART_BYTES = 16 << 10  # small parts, so that a test package is uploaded in several


class S3Process:
    """A running ``tests.s3server``; ``env`` points S3 clients (boto3, s3fs) at it."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(PART_BYTES)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.s3server", *args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.port = int(self._expect("listening").split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "dcmtier-test",
            "AWS_SECRET_ACCESS_KEY": "dcmtier-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_MAX_ATTEMPTS": "2",  # an outage fails within seconds, not minutes
            "AWS_RETRY_MODE": "standard",
            "DCMTIER_MULTIPART_BYTES": str(PART_BYTES),
        }

    def _expect(self, word: str, timeout: float = 60.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(word):
                return line
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"the S3 server exited with {self.proc.returncode}")
        raise TimeoutError(f"the S3 server did not say {word!r}")

    def wait_stopped(self) -> None:
        self._expect("stopped")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)
        self._expect("stopped")

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGUSR2)
        self._expect("listening")

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="dcmtier-test", aws_secret_access_key="dcmtier-test-secret",
        )  # fmt: skip

    def objects(self, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every object of ``bucket`` under ``prefix``: key -> its listing (Size, ETag…)."""
        found: dict[str, dict[str, Any]] = {}
        for page in (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            found.update({o["Key"]: o for o in page.get("Contents", [])})
        return found

    def uploads(self, bucket: str) -> list[dict[str, Any]]:
        """Multipart uploads begun and neither completed nor aborted."""
        return list(self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def s3_server(*args: str) -> Iterator[S3Process]:
    server = S3Process(*args)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, restoring the old values after it.

    fsspec keeps each filesystem it opened for reuse, with the endpoint it read from the
    environment then: those are forgotten on the way in and out, so that a block never talks
    to another test's server.
    """
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    _forget_filesystems()
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _forget_filesystems()


def _forget_filesystems() -> None:
    from s3fs import S3FileSystem

    S3FileSystem.clear_instance_cache()


def upload_folder(server: S3Process, folder: Path, bucket: str, prefix: str) -> list[str]:
    """Put every file under ``folder`` to ``s3://bucket/prefix/<relative path>``."""
    client = server.client()
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        client.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys
