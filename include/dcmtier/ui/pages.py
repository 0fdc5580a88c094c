"""The pages as HTML: the charts drawn from the catalogue's rows, then Jinja2 templates.

The templates (``templates/``) escape everything; only the SVG made by `charts` is inserted
as markup. Links are made relative to where the app is mounted, so the pages work behind
Airflow's base URL and inside the UI's frame alike.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, Template, select_autoescape
from markupsafe import Markup

from dcmtier.records import outcome_text
from dcmtier.tiers import TIERS
from dcmtier.ui import charts
from dcmtier.ui.charts import GREY, PALETTE, Bars, Series
from dcmtier.ui.difference import Difference
from dcmtier.ui.frames import Frame, Frames
from dcmtier.ui.queries import Overview, StudyTier, TaskRef, TierRow
from dcmtier.ui.reference import SURVEY, SURVEY_LABEL
from dcmtier.ui.retry import DAG_ID, Retry, Run


@dataclass(frozen=True)
class Links:
    """Where the app is mounted (``/dcmtier``) and where Airflow's UI is (its base path)."""

    app: str
    airflow: str

    def study(self, study_uid: str, tier: str) -> str:
        return f"{self.app}/studies/{quote(study_uid, safe='')}/{quote(tier, safe='')}"

    def task(self, task: TaskRef | None) -> str | None:
        """The task instance in Airflow's UI, where an operator clears it; None if by hand."""
        if task is None:
            return None
        dag, run, task_id = (quote(p, safe="") for p in (task.dag_id, task.run_id, task.task_id))
        mapped = f"/mapped/{task.map_index}" if task.map_index >= 0 else ""
        return f"{self.airflow}/dags/{dag}/runs/{run}/tasks/{task_id}{mapped}"

    def reprocess(self, study_uid: str) -> str:
        """Where a study's Reprocess forms post."""
        return f"{self.app}/reprocess/{quote(study_uid, safe='')}"

    def reprocessed(self, run_id: str) -> str:
        """The page a posted Reprocess form leads to: the new run."""
        return f"{self.app}/runs/{quote(run_id, safe='')}"

    def run(self, dag_id: str, run_id: str) -> str:
        """A DAG run in Airflow's grid."""
        return f"{self.airflow}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def render_overview(data: Overview, links: Links, engine: str) -> str:
    tiers = _in_tier_order(data.tiers)
    return _template("overview.html").render(
        links=links,
        engine=engine,
        data=data,
        tiers=tiers,
        savings_chart=Markup(savings_chart(tiers)),
        psnr_chart=Markup(rd_chart(tiers, "psnr")),
        ssim_chart=Markup(rd_chart(tiers, "ssim")),
        gate_chart=Markup(gate_chart(tiers)),
        totals=_totals(tiers),
    )


def render_study(
    data: StudyTier,
    frames: Frames,
    difference: Difference | None,
    difference_note: str,
    links: Links,
    *,
    retry: Retry | None = None,
) -> str:
    """The study x tier page; ``retry``: its Reprocess forms, for a user who may trigger."""
    worst = frames.worst()
    unit = frames.rows[0].unit if frames.rows else ""
    job = data.job
    return _template("study.html").render(
        links=links,
        data=data,
        frames=frames,
        worst=worst,
        worst_slice=frames.rows.index(worst) + 1 if worst else None,
        unit=unit,
        outcome=outcome_text(job.status, job.counts, job.instances or 0) if job else None,
        frame_charts=[Markup(c) for c in frame_charts(frames.rows, unit)],
        difference=difference,
        difference_src=_data_uri(difference.png) if difference else None,
        difference_scale=Markup(_scale_bar(difference)) if difference else None,
        difference_note=difference_note,
        windows=[
            {
                "window": w.window,
                "original_src": _data_uri(w.original_png),
                "derived_src": _data_uri(w.derived_png),
            }
            for w in (difference.windows if difference else ())
        ],
        retry=retry,
        dag_id=DAG_ID,
    )


def render_run(run: Run, links: Links) -> str:
    return _template("run.html").render(links=links, run=run, dag_id=DAG_ID)


def render_message(title: str, message: str, links: Links, status: int) -> str:
    return _template("message.html").render(
        links=links, title=title, message=message, status=status
    )


def savings_chart(tiers: Sequence[TierRow]) -> str:
    return charts.bar_chart(
        [t.tier for t in tiers],
        [
            Bars("original", [t.original_bytes for t in tiers], GREY),
            Bars("stored (derived files)", [t.compressed_bytes for t in tiers], PALETTE[0]),
            Bars("ZIP packages", [t.zip_bytes for t in tiers], PALETTE[1]),
        ],
        title="Savings by tier: bytes",
        value_text=human_bytes,
    )


def rd_chart(tiers: Sequence[TierRow], metric: str) -> str:
    """PSNR (median) or SSIM (mean) against achieved pixel ratio, one line per codec."""
    by_codec: dict[str, list[TierRow]] = {}
    for t in tiers:
        tier = TIERS.get(t.tier)
        codec = "other" if tier is None else tier.codec.label
        codec = "codec chosen per instance" if tier is not None and tier.chooses else codec
        by_codec.setdefault(codec, []).append(t)
    series = []
    for k, (codec, found) in enumerate(by_codec.items()):
        rows = sorted((r for r in found if r.pixel_ratio), key=lambda r: r.pixel_ratio or 0)
        values = [r.psnr_median if metric == "psnr" else r.ssim_mean for r in rows]
        series.append(
            Series(
                f"{codec} (this archive)",
                [(r.pixel_ratio or 0.0, _float(v)) for r, v in zip(rows, values, strict=True)],
                PALETTE[k % len(PALETTE)],
                labels=[r.tier for r in rows],
            )
        )
    survey = [(p.pixel_ratio, p.psnr_db if metric == "psnr" else p.ssim) for p in SURVEY]
    series.append(Series(SURVEY_LABEL, survey, GREY, dashed=True))
    name = "PSNR median (dB)" if metric == "psnr" else "SSIM mean"
    return charts.xy_chart(
        series,
        title=f"Rate-distortion: {name} against achieved ratio",
        x_label="achieved pixel ratio (N:1, log scale)",
        y_label=name,
        log_x=True,
    )


def gate_chart(tiers: Sequence[TierRow]) -> str:
    return charts.bar_chart(
        [t.tier for t in tiers],
        [
            Bars("passed the gate", [t.gate_passed for t in tiers], PALETTE[2]),
            Bars("below the gate", [t.gate_failed for t in tiers], PALETTE[1]),
            Bars("failed", [t.failed for t in tiers], PALETTE[3]),
            Bars("refused (policy)", [t.refused for t in tiers], GREY),
        ],
        title="Gate outcomes: instances per tier",
        value_text=lambda v: f"{v:,.0f}",
        stacked=True,
    )


def frame_charts(rows: Sequence[Frame], unit: str) -> list[str]:
    """PSNR, SSIM, max |difference| and pixel ratio along the slices (1 = first).

    PSNR and SSIM are those the gates judge, against each frame's own range, when every frame
    has them (measured since the range was recorded), else the nominal ones; the title says which.
    """
    ranged = bool(rows) and all(f.psnr_db_range is not None for f in rows)
    own = " against own range" if ranged else ""
    metrics: list[tuple[str, Callable[[Frame], float | None], int]] = [
        (f"PSNR{own} (dB)", (lambda f: f.psnr_db_range) if ranged else (lambda f: f.psnr_db), 0),
        (f"SSIM{own}", (lambda f: f.ssim_range) if ranged else (lambda f: f.ssim), 2),
        (f"max |difference| ({unit})", lambda f: f.max_abs_diff, 3),
        ("pixel ratio (N:1)", lambda f: f.pixel_ratio, 1),
    ]
    out = []
    for name, value, colour in metrics:
        points = [(float(i + 1), _float(value(f))) for i, f in enumerate(rows)]
        note = (
            " (every frame exact: PSNR infinite)"
            if name.startswith("PSNR") and rows and all(math.isinf(p[1]) for p in points)
            else ""
        )
        out.append(
            charts.xy_chart(
                [Series(name, points, PALETTE[colour])],
                title=name + note,
                x_label="slice (frame in slice order)",
                y_label=name,
                height=220,
                integer_x=True,
            )
        )
    return out


def human_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} PB"  # pragma: no cover - the loop returns at TB


def _in_tier_order(rows: Sequence[TierRow]) -> list[TierRow]:
    order = {name: i for i, name in enumerate(TIERS)}
    return sorted(rows, key=lambda r: (order.get(r.tier, len(order)), r.tier))


def _totals(tiers: Sequence[TierRow]) -> dict[str, Any]:
    return {
        "studies": max((t.studies for t in tiers), default=0),
        "tiers": len(tiers),
        "original": sum(t.original_bytes for t in tiers),
        "stored": sum(t.compressed_bytes for t in tiers),
    }


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _scale_bar(d: Difference) -> str:
    """A legend for the difference image: -max (blue) .. 0 (white) .. +max (red)."""
    stops = (
        '<stop offset="0" stop-color="#0000ff"/><stop offset="0.5" stop-color="#ffffff"/>'
        '<stop offset="1" stop-color="#ff0000"/>'
    )
    font = charts.FONT
    return (
        f'<svg viewBox="0 0 320 40" width="320" height="40" role="img" '
        f'aria-label="difference scale"><defs><linearGradient id="diffscale">{stops}'
        f'</linearGradient></defs><rect x="10" y="4" width="300" height="12" '
        f'fill="url(#diffscale)" stroke="#999"/>'
        f'<text x="10" y="32" {font}>-{d.max_abs:g} {d.unit}</text>'
        f'<text x="160" y="32" text-anchor="middle" {font}>0</text>'
        f'<text x="310" y="32" text-anchor="end" {font}>+{d.max_abs:g}</text></svg>'
    )


def _when(value: datetime | str | None) -> str:
    """A timestamp in UTC; SQLite hands raw SQL its text (written as UTC by the catalogue)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("dcmtier.ui", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(bytes=human_bytes, when=_when, number=_number)
    env.globals.update(tail=lambda uid: f"…{uid[-12:]}" if uid and len(uid) > 14 else uid)
    env.globals.update(dict=dict, zip=zip)
    env.filters.update(tojson_text=lambda value: json.dumps(value, ensure_ascii=False))
    return env


def _template(name: str) -> Template:
    return _environment().get_template(name)
