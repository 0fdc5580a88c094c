"""The FastAPI app Airflow's api-server mounts at ``/dcmtier``: pages for signed-in users.

Every route depends on Airflow's own authorisation (``requires_access_dag("GET")``), which
reads the JWT from the ``Authorization`` header or the UI's session cookie: a request without
a token gets 401, an invalid one 403, and a user who may not read DAGs 403. The pages are GET
(and HEAD); the one POST, a study's Reprocess form (`retry`), also needs the right to trigger
the DAG. There are no docs routes to leak the schema.
"""

from __future__ import annotations

import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from sqlalchemy.exc import SQLAlchemyError

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.hook import ServerCatalogueHook
from dcmtier.errors import CatalogueError, DcmtierError
from dcmtier.storage import access
from dcmtier.ui import pages, queries, retry
from dcmtier.ui.difference import Difference, difference_image
from dcmtier.ui.frames import DATA_DIR_ENV, Frames, read_frames
from dcmtier.ui.pages import Links

log = logging.getLogger(__name__)

URL_PREFIX: Final = "/dcmtier"


def create_app() -> FastAPI:
    """The app, its routes guarded by Airflow's auth manager."""
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    app = FastAPI(
        title="dcmtier compression pages",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(requires_access_dag("GET"))],
    )
    app.add_api_route("/", overview, methods=["GET"], response_class=HTMLResponse)

    def study_page(
        request: Request,
        study_uid: str,
        tier: str,
        user: Any = Depends(get_user),  # noqa: B008 - FastAPI's way to name a dependency
    ) -> Response:
        return study(request, study_uid, tier, user)

    app.add_api_route(
        "/studies/{study_uid}/{tier}", study_page, methods=["GET"], response_class=HTMLResponse
    )
    app.add_api_route("/studies/{study_uid}/{tier}/package.zip", package, methods=["GET"])
    app.add_api_route("/ti/{dag_id}/{run_id}/{task_id}/{map_index}", task_instance, methods=["GET"])
    retry.add_routes(app, reprocess, reprocess_run)
    return app


def overview(request: Request) -> Response:
    links = _links(request)
    catalogue = _catalogue(links)
    if isinstance(catalogue, Response):
        return catalogue
    modality = request.query_params.get("modality") or None
    with catalogue.engine.connect() as connection:
        figures = _figures(catalogue.url, connection, modality)
        data = queries.overview(connection, figures, modality)
    return HTMLResponse(pages.render_overview(data, links, catalogue.engine.dialect.name))


def study(request: Request, study_uid: str, tier: str, user: Any = None) -> Response:
    """One study x tier; with a ``user`` who may trigger the DAG, its Reprocess forms."""
    links = _links(request)
    catalogue = _catalogue(links)
    if isinstance(catalogue, Response):
        return catalogue
    with catalogue.engine.connect() as connection:
        data = queries.study_tier(connection, study_uid, tier)
        if data.job is None and not data.lineage and not data.failures:
            return _message(
                links,
                404,
                "Not found",
                f"The catalogue has no {tier} result for study {study_uid}.",
            )
        frames = read_frames(
            connection, study_uid, tier, data.package.uri if data.package else None
        )
        difference, note = _difference(connection, data, frames)
        form = _retry_form(connection, study_uid, user)
    return HTMLResponse(pages.render_study(data, frames, difference, note, links, retry=form))


def reprocess(request: Request, posted: retry.Posted, user: Any) -> Response:
    """The Reprocess form posted: one run of the DAG for this study and the chosen tiers."""
    links = _links(request)
    study_uid = posted.study_uid
    if not retry.same_origin(request) or not retry.token_valid(posted.token, user, study_uid):
        return _message(
            links,
            403,
            "Not reprocessed",
            "The form was not sent from this study's page in this session (or it is over "
            f"{retry.TOKEN_MAX_AGE_S // 3600} hours old): open the study page again.",
        )
    catalogue = _catalogue(links)
    if isinstance(catalogue, Response):
        return catalogue
    with catalogue.engine.connect() as connection:
        known = retry.study_known(connection, study_uid)
    if not known:
        return _message(links, 404, "Not found", f"The catalogue has no study {study_uid}.")
    try:
        conf = retry.conf(study_uid, posted.tiers, posted.mode)
    except ValueError as exc:
        return _message(links, 400, "Not reprocessed", f"Nothing triggered: {exc}.")
    try:
        run_id = retry.trigger(request, user, conf)
    except HTTPException as exc:
        return _message(links, exc.status_code, "Not reprocessed", f"Airflow: {exc.detail}")
    return RedirectResponse(links.reprocessed(run_id), status_code=303)  # a reload: no new run


def reprocess_run(request: Request, run_id: str) -> Response:
    """Where a posted Reprocess form leads: the run as Airflow has it."""
    links = _links(request)
    run = retry.read_run(run_id)
    if run is None:
        return _message(links, 404, "Not found", f"Airflow has no run {run_id} of {retry.DAG_ID}.")
    return HTMLResponse(pages.render_run(run, links))


def _retry_form(connection: Any, study_uid: str, user: Any) -> retry.Retry | None:
    if user is None or not retry.may_trigger(user):
        return None
    tiers = retry.study_tiers(connection, study_uid)
    return retry.Retry(study_uid, tiers, retry.form_token(user, study_uid)) if tiers else None


def package(request: Request, study_uid: str, tier: str) -> Response:
    links = _links(request)
    catalogue = _catalogue(links)
    if isinstance(catalogue, Response):
        return catalogue
    with catalogue.engine.connect() as connection:
        data = queries.study_tier(connection, study_uid, tier)
    uri = data.package.uri if data.package else None
    if uri is None or not access.is_file(uri):
        return _message(
            links, 404, "No package", f"No ZIP of {tier} for study {study_uid} is readable here."
        )
    name = f"{study_uid}-{tier}.zip"
    path = access.local_path(uri)
    if path is not None:
        return FileResponse(path, media_type="application/zip", filename=name)
    # on an object store: streamed through the api-server, never held whole in memory
    return StreamingResponse(
        access.chunks(uri),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def task_instance(
    request: Request, dag_id: str, run_id: str, task_id: str, map_index: str
) -> Response:
    """The task-instance tab: show the study x tier the task worked on."""
    links = _links(request)
    catalogue = _catalogue(links)
    if isinstance(catalogue, Response):
        return catalogue
    index = int(map_index) if map_index.lstrip("-").isdigit() else -1  # "{MAP_INDEX}": unmapped
    task = queries.TaskRef(dag_id, run_id, task_id, index)
    with catalogue.engine.connect() as connection:
        found = queries.task_study_tier(connection, task)
    if found is None:
        return _message(
            links,
            404,
            "No study × tier",
            "This task instance recorded no study × tier in the catalogue (only the "
            "compress tasks do, once they have started).",
        )
    return RedirectResponse(links.study(*found), status_code=303)


def catalogue_url() -> str:
    """The ``dcmtier_catalogue`` connection, else $DCMTIER_CATALOGUE_URL, else the SQLite
    catalogue in ``$DCMTIER_DATA_DIR`` (default ``./data``): what the DAG's tasks use."""
    return ServerCatalogueHook().get_url(Path(os.environ.get(DATA_DIR_ENV, "./data")).absolute())


_FIGURES: dict[tuple[str, str | None], tuple[tuple[Any, ...], queries.Figures]] = {}


def _figures(url: str, connection: Any, modality: str | None = None) -> queries.Figures:
    """The overview's aggregates (of one modality's series, when given), computed again only
    when the catalogue has changed."""
    version = queries.figures_version(connection)
    cached = _FIGURES.get((url, modality))
    if cached is None or cached[0] != version:
        cached = (version, queries.figures(connection, modality))
        _FIGURES[(url, modality)] = cached
    return cached[1]


@lru_cache(maxsize=4)
def _open(url: str) -> Catalogue:
    return Catalogue.connect(url)


def _catalogue(links: Links) -> Catalogue | Response:
    try:
        return _open(catalogue_url())
    except (CatalogueError, SQLAlchemyError) as exc:
        reason = queries.redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return _message(
            links,
            503,
            "Catalogue unavailable",
            f"The dcmtier catalogue cannot be read: {reason}. Set the Airflow "
            f"connection {ServerCatalogueHook.default_conn_name} (or $DCMTIER_CATALOGUE_URL) "
            "and run `dcmtier db upgrade`.",
        )


def _difference(
    connection: Any, data: queries.StudyTier, frames: Frames
) -> tuple[Difference | None, str]:
    worst = frames.worst()
    if worst is None:
        return None, ""
    derived = next(
        (r.output_uri for r in data.lineage if r.source_sop_uid == worst.source_sop_uid), None
    )
    original = queries.lossless_copy(connection, worst.source_sop_uid)
    if derived is None or original is None:
        return None, "The catalogue does not say where this frame's files are."
    try:
        return _rendered(original, derived, worst.frame, _stamp(original, derived)), ""
    except (DcmtierError, OSError, ValueError) as exc:
        log.info("no difference image for %s: %s", worst.source_sop_uid, type(exc).__name__)
        return None, (
            "The difference image cannot be drawn: the original or the derived file "
            "is not readable from the api-server."
        )


@lru_cache(maxsize=32)
def _rendered(original_uri: str, derived_uri: str, frame: int, stamp: object) -> Difference:
    """Drawn once per pair of files as they are now (``stamp``: their sizes and versions).

    A file on an object store is downloaded into a temporary folder for the decoder, and
    deleted with it once the image is drawn.
    """
    with tempfile.TemporaryDirectory(prefix="dcmtier-ui-") as folder:
        original = access.fetch(original_uri, Path(folder), "original.dcm")
        derived = access.fetch(derived_uri, Path(folder), "derived.dcm")
        return difference_image(original, derived, frame)


def _stamp(*uris: str) -> tuple[tuple[int, str], ...]:
    return tuple(access.version(uri) for uri in uris)


def _links(request: Request) -> Links:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return Links(app=root, airflow=root.removesuffix(URL_PREFIX))


def _message(links: Links, status: int, title: str, message: str) -> HTMLResponse:
    return HTMLResponse(pages.render_message(title, message, links, status), status_code=status)
