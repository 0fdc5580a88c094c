"""An output root on object storage, and the local scratch folder a worker writes into first.

An output root is a local folder or an fsspec URL (``s3://bucket/prefix``, ``gs://…``,
``az://…``, ``memory://…``). On a remote root, objects are named by keys relative to it
(``derived/<tier>/<study>/<series>/<sop>.dcm``): UIDs, tiers and file keys only, never a
landing file's name.

Credentials and endpoint come from each store's own standard settings: for S3
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``
(or a profile); for GCS ``GOOGLE_APPLICATION_CREDENTIALS``; for Azure
``AZURE_STORAGE_CONNECTION_STRING`` or ``AZURE_STORAGE_ACCOUNT_NAME`` / ``_KEY``. `configure`
sets options for one protocol instead (the DAG does, from an Airflow connection).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmtier.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

LOCAL_SCHEMES = ("", "file", "local")
ENV_SCRATCH = "DCMTIER_SCRATCH"  # a worker's local folder for outputs before they are published
ENV_PART_BYTES = "DCMTIER_MULTIPART_BYTES"
DEFAULT_PART_BYTES = 64 << 20  # S3: an object of two parts or more is uploaded in parts
MIN_PART_BYTES = 5 << 20  # S3's and MinIO's smallest part (but the last)


def is_remote(location: str | Path) -> bool:
    """True for a URL whose scheme is not a local one (``s3://``, ``gs://``, ``memory://``…)."""
    if isinstance(location, Path) or "://" not in location:
        return False
    return location.split("://", 1)[0].lower() not in LOCAL_SCHEMES


def local_root(location: str | Path) -> Path:
    """The folder a local output root names (``/x``, ``x``, ``file:///x``), made absolute."""
    text = str(location)
    if is_remote(text):
        raise ConfigError(f"{text}: not a local folder")
    return Path(text.split("://", 1)[1] if "://" in text else text).expanduser().absolute()


def scratch_root(url: str) -> Path:
    """This worker's local folder for a remote output root: ``$DCMTIER_SCRATCH`` (default: the
    system's temporary folder) ``/dcmtier-scratch/<hash of the URL>``."""
    base = Path(os.environ.get(ENV_SCRATCH) or tempfile.gettempdir())
    return base / "dcmtier-scratch" / hashlib.sha256(url.encode()).hexdigest()[:16]


def configure(protocol: str, options: Mapping[str, Any]) -> None:
    """Use ``options`` (fsspec storage options, e.g. ``key``, ``secret``, ``endpoint_url``) for
    every filesystem of ``protocol`` this process opens from now on."""
    import fsspec

    fsspec.config.conf.setdefault(protocol, {}).update(options)


def part_bytes() -> int:
    """The multipart part size: ``$DCMTIER_MULTIPART_BYTES``, else 64 MiB."""
    text = os.environ.get(ENV_PART_BYTES)
    try:
        size = int(text) if text else DEFAULT_PART_BYTES
    except ValueError as exc:
        raise ConfigError(f"{ENV_PART_BYTES}={text!r} is not a number of bytes") from exc
    if size <= 0:
        raise ConfigError(f"{ENV_PART_BYTES} must be positive, not {size}")
    return size


@dataclass(frozen=True)
class Store:
    """A remote output root: objects under keys relative to ``url``."""

    url: str
    fs: Any
    base: str  # ``url`` as the filesystem spells it (``bucket/prefix``)

    @classmethod
    def open(cls, url: str) -> Store:
        import fsspec

        _quiet_abandoned_tasks()
        url = url.rstrip("/")
        try:
            fs, base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"{url}: no filesystem for this URL: {exc}") from exc
        return cls(url, fs, str(base).rstrip("/"))

    @property
    def is_s3(self) -> bool:
        return "s3" in _protocols(self.fs)

    def url_of(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def put(self, local: Path, key: str) -> None:
        """Upload one file; on S3 a file of two parts or more goes up in parts."""
        extra = {"chunksize": part_bytes()} if self.is_s3 else {}
        self._call("upload", key, self.fs.put_file, str(local), self._path(key), **extra)

    def put_many(self, pairs: Sequence[tuple[Path, str]]) -> None:
        """Upload files concurrently: ``local path -> key`` (in 50 MiB parts from 100 MiB)."""
        if pairs:
            sources = [str(p) for p, _ in pairs]
            targets = [self._path(k) for _, k in pairs]
            self._call("upload", pairs[0][1], self.fs.put, sources, targets)

    def copy(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Server-side copies ``source key -> destination key``, run concurrently."""
        if pairs:
            sources = [self._path(s) for s, _ in pairs]
            targets = [self._path(t) for _, t in pairs]
            self._call("copy", pairs[0][1], self.fs.copy, sources, targets)

    def keys(self, prefix: str) -> dict[str, int]:
        """Every object under ``prefix`` (a folder: ends with ``/``), key -> size."""
        return {key: size for key, (size, _) in self.modified(prefix).items()}

    def modified(self, prefix: str) -> dict[str, tuple[int, datetime | None]]:
        """Every object under ``prefix``: key -> (size, last modified, when the store says)."""
        path = self._path(prefix)
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(path, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise StorageError(f"{self.url}: cannot list {prefix}: {_one_line(exc)}") from exc
        start = len(self.base) + 1
        return {
            name[start:]: (int(info.get("size") or 0), _when(info))
            for name, info in found.items()
            if info.get("type") == "file"
        }

    def remove(self, prefix: str) -> None:
        """Delete every object under ``prefix`` (and, on S3, abort its unfinished uploads)."""
        listed = self.keys(prefix)
        if listed:
            self._call("delete", prefix, self.fs.rm, [self._path(k) for k in listed])
        if self.is_s3:
            self._abort_uploads(prefix)

    def delete(self, keys: Sequence[str]) -> None:
        """Delete these objects (each a key relative to the root)."""
        if keys:
            self._call("delete", keys[0], self.fs.rm, [self._path(k) for k in keys])

    def key_of(self, url: str) -> str:
        """The key of an object named by its URL under this root (`url_of` reversed)."""
        if not url.startswith(f"{self.url}/"):
            raise ConfigError(f"{url}: not under {self.url}")
        return url.removeprefix(f"{self.url}/")

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call("write", key, self.fs.pipe_file, self._path(key), data)

    def read_bytes(self, key: str) -> bytes:
        data = self._call("read", key, self.fs.cat_file, self._path(key))
        return bytes(data)

    def download(self, keys: Sequence[str], folder: Path) -> None:
        """Copy objects to ``folder``, each at its key as a relative path."""
        if not keys:
            return
        targets = [folder / key for key in keys]
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        sources = [self._path(k) for k in keys]
        self._call("download", keys[0], self.fs.get, sources, [str(t) for t in targets])

    def _abort_uploads(self, prefix: str) -> None:
        bucket, _, key_prefix = self._path(prefix).partition("/")
        client_call = self.fs.call_s3
        listed = self._call(
            "list uploads", prefix, client_call, "list_multipart_uploads",
            Bucket=bucket, Prefix=key_prefix,
        )  # fmt: skip
        for upload in listed.get("Uploads") or []:
            self._call(
                "abort upload", prefix, client_call, "abort_multipart_upload",
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"],
            )  # fmt: skip

    def _call(self, what: str, key: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # every backend and its HTTP client raise their own types
            raise StorageError(f"{self.url}: {what} {key} failed: {_one_line(exc)}") from exc


class _AbandonedTasks(logging.Filter):
    """Drops asyncio's report of a task whose exception nobody read: in an outage the HTTP
    client of fsspec's event loop leaves such tasks behind, and the error that matters is the
    one `Store` raises (one line, naming the object)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Task exception was never retrieved")


def _quiet_abandoned_tasks() -> None:
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _AbandonedTasks) for f in logger.filters):
        logger.addFilter(_AbandonedTasks())


def _when(info: Mapping[str, Any]) -> datetime | None:
    """An object's last modification as a listing gives it (S3: ``LastModified``)."""
    value = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def write_text(location: str | Path, text: str) -> None:
    """Write a small text file or object whole (one PUT on a store: atomic)."""
    if not is_remote(location):
        path = local_root(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    _fsspec_call("write", str(location), lambda fs, p: fs.pipe_file(p, text.encode()))


def read_text(location: str | Path) -> str:
    """Read a small text file or object written by `write_text`."""
    if not is_remote(location):
        return local_root(location).read_text()
    data = _fsspec_call("read", str(location), lambda fs, p: fs.cat_file(p))
    return bytes(data).decode()


def _fsspec_call(what: str, url: str, func: Any) -> Any:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        return func(fs, path)
    except Exception as exc:  # every backend and its HTTP client raise their own types
        raise StorageError(f"{what} {url} failed: {_one_line(exc)}") from exc


def connection_options(
    conn_type: str, login: str | None, password: str | None, extra: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The fsspec protocol and storage options of a connection (an Airflow connection's type,
    login, password and extra).

    ``aws`` / ``s3``: login and password are the access key id and secret, ``extra`` may give
    ``endpoint_url`` (MinIO, Ceph…) and ``region_name``. ``google_cloud_platform`` / ``gcs``:
    ``extra`` holds gcsfs options (``token``: a key file path, ``project``). ``wasb`` /
    ``azure`` / ``abfs``: login and password are the account name and key; ``extra`` holds
    further adlfs options.
    """
    kind = conn_type.lower()
    if kind in ("aws", "s3"):
        options: dict[str, Any] = {"key": login, "secret": password}
        if extra.get("endpoint_url"):
            options["endpoint_url"] = extra["endpoint_url"]
        if extra.get("region_name"):
            options["client_kwargs"] = {"region_name": extra["region_name"]}
        return "s3", {k: v for k, v in options.items() if v}
    if kind in ("google_cloud_platform", "gcs", "gs"):
        return "gcs", dict(extra)
    if kind in ("wasb", "azure", "abfs", "az"):
        options = {"account_name": login, "account_key": password, **extra}
        return "abfs", {k: v for k, v in options.items() if v}
    raise ConfigError(
        f"connection type {conn_type!r} names no object store dcmtier knows "
        "(aws, google_cloud_platform, wasb)"
    )
