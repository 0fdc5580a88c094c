"""Reprocess a study from its page: a run of the DAG for that study and chosen tiers.

The study page shows a "Reprocess" form per tier of the study (and one for all its tiers,
one for its failed tiers only) to users whom Airflow's auth manager allows to trigger the DAG
(``POST`` on its runs, as ``POST /api/v2/dags/{dag_id}/dagRuns`` asks). The form posts to
``/dcmtier/reprocess/{study_uid}``, guarded by the same check, and the run is made by
Airflow's own route function for that endpoint (`trigger_dag_run`: the DAG's checks, its
params validated, ``create_dagrun`` as a queued manual run), with the conf an operator would
type: ``{"study_uids": [study], "tiers": [...], "reprocess": "all" | "failed"}``. The answer
is a redirect (303) to ``/dcmtier/runs/{run_id}``: the new run as Airflow has it, with its
link in the grid; reloading that page triggers nothing.

Against cross-site requests: Airflow's session cookie is ``SameSite=Lax`` (a form posted from
another site carries none), the form holds a token signed with the api-server's
``[api] secret_key`` for this user and study (a page elsewhere cannot read it), and a POST
whose ``Origin`` is not this server's is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Connection, text

from dcmtier.records import STUDY_FAILED, STUDY_PARTIAL
from dcmtier.tiers import TIERS

DAG_ID: Final = "dicom_archive_compression"
TOKEN_MAX_AGE_S: Final = 12 * 3600  # a page left open over a working day still posts
_SALT: Final = "dcmtier-reprocess"


@dataclass(frozen=True)
class TierState:
    """A tier the study has an attempt of, and the latest attempt's status."""

    tier: str
    status: str


@dataclass(frozen=True)
class Retry:
    """What the study page's Reprocess section needs: the study's tiers and the form token."""

    study_uid: str
    tiers: list[TierState]
    token: str

    @property
    def failed(self) -> list[str]:
        """The tiers a ``reprocess: failed`` run would redo now."""
        return [t.tier for t in self.tiers if t.status in (STUDY_FAILED, STUDY_PARTIAL)]


@dataclass(frozen=True)
class Posted:
    """A Reprocess form as posted: the study (from the path), the tiers, the mode, the token."""

    study_uid: str
    tiers: list[str]
    mode: str
    token: str


@dataclass(frozen=True)
class Run:
    """A run of the DAG as Airflow's metadata has it, for the page a form leads to."""

    run_id: str
    conf: dict[str, Any]
    state: str
    run_type: str
    triggered_by: str  # the triggering user's name
    paused: bool  # the DAG is paused: the run waits

    @property
    def study_uids(self) -> list[str]:
        found = self.conf.get("study_uids")
        return [str(u) for u in found] if isinstance(found, list) else []

    @property
    def tiers(self) -> list[str]:
        found = self.conf.get("tiers")
        return [str(t) for t in found] if isinstance(found, list) else []


def study_tiers(connection: Connection, study_uid: str) -> list[TierState]:
    """The study's tiers the DAG knows, in tier-table order, each with its latest status."""
    rows = connection.execute(
        text("SELECT tier, status FROM jobs WHERE study_uid = :s ORDER BY id"), {"s": study_uid}
    )
    latest = {str(tier): str(status) for tier, status in rows}
    return [TierState(name, latest[name]) for name in TIERS if name in latest]


def study_known(connection: Connection, study_uid: str) -> bool:
    row = connection.execute(
        text("SELECT 1 FROM studies WHERE study_uid = :s"), {"s": study_uid}
    ).first()
    return row is not None


def conf(study_uid: str, tiers: Sequence[str], reprocess: str) -> dict[str, Any]:
    """The run's conf, as an operator would type it; ValueError for unknown tiers or modes."""
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown:
        raise ValueError(f"unknown tier(s): {', '.join(unknown)}")
    if not tiers:
        raise ValueError("no tier chosen")
    if reprocess not in ("all", "failed"):
        raise ValueError(f"reprocess must be all or failed, not {reprocess!r}")
    ordered = [name for name in TIERS if name in set(tiers)]
    return {"study_uids": [study_uid], "tiers": ordered, "reprocess": reprocess}


def may_trigger(user: Any) -> bool:
    """Whether Airflow's auth manager lets ``user`` create runs of the DAG."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.models.dag import DagModel

    details = DagDetails(id=DAG_ID, team_name=DagModel.get_team_name(DAG_ID))
    allowed = get_auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=details, user=user
    )
    return bool(allowed)


def form_token(user: Any, study_uid: str) -> str:
    return str(_serializer().dumps([str(user.get_id()), study_uid]))


def token_valid(token: str, user: Any, study_uid: str) -> bool:
    try:
        found = _serializer().loads(token, max_age=TOKEN_MAX_AGE_S)
    except BadSignature:  # a SignatureExpired too
        return False
    return bool(found == [str(user.get_id()), study_uid])


def same_origin(request: Request) -> bool:
    """No ``Origin`` (not a browser's cross-site request), or this server's own origin: the
    request's scheme and Host, or ``[api] base_url`` behind a proxy."""
    from airflow.configuration import conf as airflow_conf

    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    base = urlsplit(airflow_conf.get("api", "base_url", fallback="") or "")
    if base.scheme and base.netloc:
        own.add(f"{base.scheme}://{base.netloc}")
    return origin.rstrip("/") in own


def trigger(request: Request, user: Any, run_conf: dict[str, Any]) -> str:
    """A manual run with ``run_conf``, made by Airflow's own POST dagRuns route function
    (raises its HTTPException: 404 no such DAG, 400 import errors or params refused), and an
    audit-log entry as that route's ``action_logging`` writes, naming the conf; its run id."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
    from airflow.api_fastapi.core_api.routes.public.dag_run import trigger_dag_run
    from airflow.models.dagbag import DBDagBag
    from airflow.models.log import Log
    from airflow.utils.session import create_session

    note = f"Reprocess from the Compression pages by {user.get_name()}"
    body = TriggerDAGRunPostBody(logical_date=None, conf=run_conf, note=note)
    with create_session(scoped=False) as session:
        run = trigger_dag_run(
            dag_id=DAG_ID,
            body=body,
            dag_bag=DBDagBag(),
            user=user,
            session=session,
            request=request,
        )
        run_id = str(cast(Any, run).run_id)  # annotated as the response model; a DagRun
        session.add(
            Log(
                event="trigger_dag_run",
                owner=user.get_name(),
                owner_display_name=user.get_name(),
                dag_id=DAG_ID,
                run_id=run_id,
                extra=json.dumps({"source": "dcmtier reprocess", "conf": run_conf}),
            )
        )
    return run_id


def read_run(run_id: str) -> Run | None:
    """The DAG's run ``run_id`` from Airflow's metadata, None if it has none."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session(scoped=False) as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id))
        if run is None:
            return None
        model = session.get(DagModel, DAG_ID)
        return Run(
            run_id=str(run.run_id),
            conf=dict(run.conf or {}),
            state=str(getattr(run.state, "value", run.state)),
            run_type=str(getattr(run.run_type, "value", run.run_type)),
            triggered_by=str(run.triggering_user_name or ""),
            paused=bool(model is not None and model.is_paused),
        )


def add_routes(app: FastAPI, posted: Any, shown: Any) -> None:
    """On ``app``, for users who may trigger the DAG, ``POST /reprocess/{study_uid}`` (the
    ``posted`` handler gets the request, the form as `Posted` and the signed-in user), and,
    for those who may read its runs, ``GET /runs/{run_id}``, where a posted form leads
    (``shown`` gets the request and the run id)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    def may(method: Any) -> Any:
        return Depends(
            requires_access_dag(
                method=method, access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID
            )
        )

    def reprocess(
        request: Request,
        *,
        study_uid: str,
        tiers: list[str] = Form(default=[]),  # noqa: B008 - FastAPI's way to read a form
        reprocess: str = Form(default="all"),
        token: str = Form(default=""),
        user: Any = Depends(get_user),  # noqa: B008
    ) -> Response:
        form = Posted(study_uid, tiers, reprocess, token)
        return posted(request, form, user)  # type: ignore[no-any-return]

    app.add_api_route(
        "/reprocess/{study_uid}",
        reprocess,
        methods=["POST"],
        response_class=HTMLResponse,
        dependencies=[may("POST")],
    )
    app.add_api_route(
        "/runs/{run_id}",
        shown,
        methods=["GET"],
        response_class=HTMLResponse,
        dependencies=[may("GET")],
    )


def _serializer() -> URLSafeTimedSerializer:
    from airflow.api_fastapi.auth.tokens import get_signing_key

    return URLSafeTimedSerializer(get_signing_key("api", "secret_key"), salt=_SALT)
