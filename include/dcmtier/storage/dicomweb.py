"""A DICOMweb archive (a PACS or vendor-neutral archive): QIDO-RS to search, WADO-RS to
retrieve as stored, STOW-RS to store.

dcmtier names one as ``dicomweb+http://host/prefix`` (or ``dicomweb+https://``), the prefix
being the server's DICOMweb root (``/dicom-web`` on Orthanc, ``/dcm4chee-arc/aets/DCM4CHEE/rs``
on dcm4chee). An instance is ``<that URL>/studies/<study>/series/<series>/instances/<sop>``:
the landing index and the catalogue's operator tables name it so (UIDs only).

Credentials never appear in the URL (one with ``user@`` is refused), in logs or in the
catalogue: they come from `configure` (the DAG, from an Airflow HTTP connection) or else from
``DCMTIER_DICOMWEB_TOKEN`` (a bearer token) or ``DCMTIER_DICOMWEB_USER`` /
``DCMTIER_DICOMWEB_PASSWORD`` (basic).

Every request is retried on a transport error and on 5xx (``RETRIES`` times, backing off);
the error that remains names the URL and the reason on one line (`StorageError`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dcmtier.errors import ConfigError, StorageError, one_line
from dcmtier.storage import multipart

if TYPE_CHECKING:
    import httpx

SCHEMES = ("dicomweb+http", "dicomweb+https")
ENV_USER, ENV_PASSWORD = "DCMTIER_DICOMWEB_USER", "DCMTIER_DICOMWEB_PASSWORD"
ENV_TOKEN = "DCMTIER_DICOMWEB_TOKEN"
PAGE = 1000  # QIDO-RS results asked for per request (limit / offset)
RETRIES = 3
BACKOFF_S = 0.5
TIMEOUT_S = 60.0
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
JSON = "application/dicom+json"
UID = {"study": "0020000D", "series": "0020000E", "sop": "00080018"}
COUNT = "00201208"  # NumberOfStudyRelatedInstances
STUDY_DATE, MODALITY = "00080020", "00080060"
FAILED_SOPS, FAILURE_REASON = "00081198", "00081197"


@dataclass(frozen=True)
class Credentials:
    """Basic (``user``, ``password``) or bearer (``token``) authentication."""

    user: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never printed, even by a traceback's locals
        return "Credentials(***)"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def basic(self) -> tuple[str, str] | None:
        return (self.user, self.password or "") if self.user and not self.token else None


_configured: Credentials | None = None


def configure(credentials: Credentials | None) -> None:
    """Use ``credentials`` for every DICOMweb server this process talks to from now on."""
    global _configured  # noqa: PLW0603 (one process-wide setting, as storage.configure)
    _configured = credentials


def connection_credentials(
    login: str | None, password: str | None, extra: Mapping[str, Any]
) -> Credentials | None:
    """The credentials of an Airflow HTTP connection: ``extra`` ``{"token": ...}`` (or a
    password without a login) is a bearer token; a login and password are basic."""
    token = extra.get("token") or (password if not login else None)
    if token:
        return Credentials(token=str(token))
    return Credentials(login, password) if login else None


def credentials() -> Credentials | None:
    """The configured credentials, else the environment's, else None."""
    if _configured is not None:
        return _configured
    token, user = os.environ.get(ENV_TOKEN), os.environ.get(ENV_USER)
    if token or user:
        return Credentials(user, os.environ.get(ENV_PASSWORD), token)
    return None


def is_dicomweb(uri: str | Path) -> bool:
    return isinstance(uri, str) and uri.split("://", 1)[0].lower() in SCHEMES


@dataclass(frozen=True)
class Ref:
    """One instance on a server, by its UIDs."""

    study: str
    series: str
    sop: str

    @property
    def path(self) -> str:
        return f"studies/{self.study}/series/{self.series}/instances/{self.sop}"


@dataclass(frozen=True)
class StudyCount:
    """A study a QIDO-RS study search found, with its number of instances (None: not said)."""

    uid: str
    instances: int | None


def split_uri(uri: str) -> tuple[str, Ref]:
    """``(server URL, instance)`` of an instance URI (`Ref.path` below a server URL)."""
    root, marker, rest = uri.partition("/studies/")
    parts = rest.split("/")
    if not marker or len(parts) != 5 or parts[1] != "series" or parts[3] != "instances":
        raise ConfigError(
            f"{uri}: not a DICOMweb instance URL (.../studies/S/series/R/instances/I)"
        )
    return root, Ref(parts[0], parts[2], parts[4])


def value(item: Mapping[str, Any], tag: str) -> str | None:
    """The first value of ``tag`` in a DICOM JSON object, as text (None when absent)."""
    values = (item.get(tag) or {}).get("Value") or []
    return str(values[0]) if values else None


class Server:
    """One DICOMweb server: its URL as the operator wrote it, the HTTP root it names."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = TIMEOUT_S,
        retries: int = RETRIES,
        transport: httpx.BaseTransport | None = None,  # another transport (tests)
    ) -> None:
        if not is_dicomweb(url):
            raise ConfigError(f"{url}: not a DICOMweb URL (dicomweb+http:// or dicomweb+https://)")
        parsed = urlsplit(url.split("+", 1)[1])
        if parsed.username or parsed.password:
            raise ConfigError(
                f"{url.split('://', maxsplit=1)[0]}://…@{parsed.hostname}: "
                "credentials do not go in the URL; "
                f"set {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN} (or the DAG's dicomweb_conn_id)"
            )
        self.url = url.rstrip("/")
        self.base = url.split("+", 1)[1].rstrip("/")
        self.retries = max(1, retries)
        import httpx  # only where a server is used: not when a command line is parsed

        auth = credentials()
        self._client = httpx.Client(
            auth=auth.basic() if auth else None,
            headers=auth.headers() if auth else {},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def uri(self, ref: Ref) -> str:
        return f"{self.url}/{ref.path}"

    # QIDO-RS

    def studies(self, dates: tuple[date, date] | None = None) -> list[StudyCount]:
        """Every study (StudyDate within ``dates`` when given), with its instance count.

        A study UID found more than once (Orthanc keeps one study per patient ID and study
        UID) is one study, its counts added up.
        """
        query: dict[str, str] = {"includefield": COUNT}
        if dates is not None:
            query["StudyDate"] = f"{dates[0]:%Y%m%d}-{dates[1]:%Y%m%d}"
        counts: dict[str, int | None] = {}
        for item in self.search("studies", query):
            uid = value(item, UID["study"])
            if uid:
                count = value(item, COUNT)
                number = int(count) if count else None
                earlier = counts.get(uid, 0)
                both = None if number is None or earlier is None else earlier + number
                counts[uid] = both
        return [StudyCount(uid, count) for uid, count in counts.items()]

    def instances(self, study: str) -> list[Ref]:
        """The instances of one study."""
        found = []
        for item in self.search(f"studies/{study}/instances", {}):
            series, sop = value(item, UID["series"]), value(item, UID["sop"])
            if series and sop:
                found.append(Ref(value(item, UID["study"]) or study, series, sop))
        return found

    def search(self, path: str, query: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Every result of a QIDO-RS search, ``PAGE`` at a time (``limit`` and ``offset``)."""
        offset = 0
        while True:
            page = {**query, "limit": str(PAGE), "offset": str(offset)}
            response = self._request(
                "search", "GET", path, params=page, headers={"Accept": JSON}, accept={404}
            )  # some servers answer a search for an unknown study with 404: nothing found
            found = response.status_code != 404 and response.content.strip()
            items = response.json() if found else []
            yield from items
            if len(items) < PAGE:
                return
            offset += len(items)

    # WADO-RS

    def metadata(self, study: str, series: str, sop: str | None = None) -> list[dict[str, Any]]:
        """The metadata (no bulk data) of a series' instances, or of one of them."""
        path = f"studies/{study}/series/{series}" + (f"/instances/{sop}" if sop else "")
        response = self._request("metadata", "GET", f"{path}/metadata", headers={"Accept": JSON})
        return list(response.json())

    def retrieve(self, ref: Ref, target: Path) -> Path:
        """Write one instance as the server stores it (``transfer-syntax=*``) to ``target``:
        the response goes to a hidden file beside it first, then its one part to ``target``."""
        spool = target.with_name(f".{target.name}.part")
        try:
            content_type = self._download("retrieve", ref.path, spool)
            try:
                multipart.split_file(spool, multipart.boundary_of(content_type), [target])
            except StorageError as exc:  # the body, not the request: name the instance
                raise StorageError(f"{self.uri(ref)}: retrieve failed: {exc}") from exc
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        finally:
            spool.unlink(missing_ok=True)
        return target

    # STOW-RS

    def store(self, files: Sequence[Path], study: str | None = None) -> list[str]:
        """Store ``files`` in one STOW-RS request; the reasons of the instances it refused."""
        content_type, data = multipart.body(files)
        path = f"studies/{study}" if study else "studies"
        response = self._request(
            "store", "POST", path, content=data,
            headers={"Content-Type": content_type, "Accept": JSON}, accept={200, 202, 409},
        )  # fmt: skip
        try:
            body = response.json() if response.content.strip() else {}
        except ValueError:
            body = {}
        failed = (body.get(FAILED_SOPS) or {}).get("Value") or []
        if response.status_code == 409 and not failed:
            return [f"HTTP 409 {response.reason_phrase}: {' '.join(response.text.split())[:200]}"]
        return [f"{value(f, '00081155')}: reason {value(f, FAILURE_REASON)}" for f in failed]

    # HTTP

    def _request(
        self,
        what: str,
        method: str,
        path: str,
        *,
        accept: set[int] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        import httpx

        url = f"{self.base}/{path}"
        for attempt in range(1, self.retries + 1):
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                if attempt == self.retries:
                    raise self._error(what, path, _reason(exc)) from exc
            else:
                if response.status_code < 300 or response.status_code in (accept or set()):
                    return response
                reason = f"HTTP {response.status_code} {response.reason_phrase}"
                if response.status_code < 500 or attempt == self.retries:
                    raise self._error(what, path, reason)
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _download(self, what: str, path: str, target: Path) -> str:
        """GET ``path`` as stored into ``target`` whole; the response's Content-Type."""
        import httpx

        url = f"{self.base}/{path}"
        for attempt in range(1, self.retries + 1):
            try:
                with self._client.stream("GET", url, headers={"Accept": AS_STORED}) as response:
                    if response.status_code < 300:
                        with target.open("wb") as out:
                            for chunk in response.iter_bytes(1 << 20):
                                out.write(chunk)
                        return str(response.headers.get("Content-Type", ""))
                    reason = f"HTTP {response.status_code} {response.reason_phrase}"
                    if response.status_code < 500 or attempt == self.retries:
                        raise self._error(what, path, reason)
            except httpx.HTTPError as exc:
                if attempt == self.retries:
                    raise self._error(what, path, _reason(exc)) from exc
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, what: str, path: str, reason: str) -> StorageError:
        return StorageError(f"{self.url}/{path}: {what} failed: {reason}")


def _reason(exc: httpx.HTTPError) -> str:
    """A transport error on one line: its type and what the system said."""
    return f"{type(exc).__name__}: {one_line(exc)}"


def instance_uris(url: str) -> list[str]:
    """Every instance on the server ``url``, study by study (QIDO-RS only)."""
    with Server(url) as server:
        return [server.uri(ref) for s in server.studies() for ref in server.instances(s.uid)]


REQUESTS = 8  # concurrent retrievals; ``DCMTIER_DICOMWEB_REQUESTS`` overrides
ENV_REQUESTS = "DCMTIER_DICOMWEB_REQUESTS"


def requests_allowed() -> int:
    """How many WADO-RS requests run at once: ``$DCMTIER_DICOMWEB_REQUESTS``, else 8."""
    text = os.environ.get(ENV_REQUESTS)
    try:
        count = int(text) if text else REQUESTS
    except ValueError as exc:
        raise ConfigError(f"{ENV_REQUESTS}={text!r} is not a number") from exc
    return max(1, count)


def retrieve_all(uris: Sequence[str], targets: Sequence[Path]) -> None:
    """Retrieve instances (by URI) into ``targets``, ``requests_allowed()`` at a time.

    The first failure stops the rest and is raised; the targets written so far stay (the
    caller's staging folder, which it removes).
    """
    from concurrent.futures import ThreadPoolExecutor

    if not uris:
        return
    split = [split_uri(uri) for uri in uris]
    servers = {root: Server(f"{root}") for root in dict.fromkeys(root for root, _ in split)}
    try:
        workers = min(requests_allowed(), len(uris))
        with ThreadPoolExecutor(workers, thread_name_prefix="dcmtier-wado") as pool:
            jobs = [
                pool.submit(servers[root].retrieve, ref, target)
                for (root, ref), target in zip(split, targets, strict=True)
            ]
            try:
                for job in jobs:
                    job.result()
            except BaseException:
                for job in jobs:
                    job.cancel()
                raise
    finally:
        for server in servers.values():
            server.close()
