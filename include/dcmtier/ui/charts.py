"""Charts as inline SVG, drawn on the server: nothing is fetched, no script runs.

Hospital networks often have no internet, so the pages carry their charts as markup. Three
shapes cover the pages: an x-y chart (lines with markers, optionally a logarithmic x axis) for
rate-distortion curves and per-frame metrics, grouped horizontal bars for bytes, and stacked
horizontal bars for counts. Colours are the Okabe-Ito palette, readable with colour blindness.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
GREY: Final = "#6b6b6b"
FONT: Final = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Series:
    """One line of an x-y chart; ``labels`` (one per point, may be empty) name the points."""

    name: str
    points: Sequence[tuple[float, float]]
    colour: str
    dashed: bool = False
    labels: Sequence[str] = ()


@dataclass(frozen=True)
class Bars:
    """One value per category, drawn in one colour (a group of a grouped or stacked chart)."""

    name: str
    values: Sequence[float]
    colour: str


@dataclass(frozen=True)
class _Frame:
    """The plot area inside the margins, and the two scales that map data into it."""

    left: float
    top: float
    width: float
    height: float
    x: Callable[[float], float]
    y: Callable[[float], float]


def xy_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    integer_x: bool = False,
    width: int = 600,
    height: int = 320,
) -> str:
    """Lines with markers; an empty chart says there is nothing to draw."""
    finite = [(x, y) for s in series for x, y in s.points if _finite(x, y, log_x)]
    if not finite:
        return _empty(title, width)
    xs, ys = [p[0] for p in finite], [p[1] for p in finite]
    x_ticks = _log_ticks(min(xs), max(xs)) if log_x else _linear_ticks(min(xs), max(xs))
    if integer_x and len(x_ticks) > 1 and x_ticks[1] - x_ticks[0] < 1:  # slices: whole numbers
        x_ticks = [float(v) for v in range(math.floor(min(xs)), math.ceil(max(xs)) + 1)]
    y_ticks = _linear_ticks(min(ys), max(ys))
    legend_rows = math.ceil(len(series) / 2)
    frame = _frame(
        width, height, x_ticks=x_ticks, y_ticks=y_ticks, log_x=log_x, bottom=46 + 16 * legend_rows
    )
    parts = [_open(width, height, title), *_axes(frame, x_ticks, y_ticks, log_x)]
    parts.append(_axis_labels(frame, x_label, y_label))
    for s in series:
        parts.append(_line(frame, s, log_x))
    parts.append(_legend(frame, [(s.name, s.colour, s.dashed) for s in series], height))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    categories: Sequence[str],
    groups: Sequence[Bars],
    *,
    title: str,
    value_text: Callable[[float], str],
    width: int = 600,
    stacked: bool = False,
) -> str:
    """Horizontal bars per category: side by side (grouped) or end to end (stacked)."""
    if not categories:
        return _empty(title, width)
    band = 16 if stacked else 8 + 10 * len(groups)
    height = 40 + band * len(categories) + 16 * math.ceil(len(groups) / 2) + 20
    totals = [sum(g.values[i] for g in groups) for i in range(len(categories))]
    top = max(totals if stacked else [v for g in groups for v in g.values] or [0.0])
    ticks = _linear_ticks(0.0, top or 1.0)
    left, plot_w = 110.0, width - 110.0 - 90.0
    scale = plot_w / (ticks[-1] or 1.0)
    parts = [_open(width, height, title)]
    for t in ticks:
        x = left + t * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{30 + band * len(categories)}" '
            f'stroke="#e4e4e4"/>'
            f'<text x="{x:.1f}" y="{42 + band * len(categories)}" text-anchor="middle" '
            f"{FONT}>{escape(value_text(t))}</text>"
        )
    for i, name in enumerate(categories):
        y0 = 30 + band * i
        parts.append(
            f'<text x="{left - 6}" y="{y0 + band / 2 + 4:.1f}" text-anchor="end" '
            f"{FONT}>{escape(name)}</text>"
        )
        parts.extend(
            _bars(
                groups,
                i,
                left=left,
                y0=y0,
                scale=scale,
                value_text=value_text,
                stacked=stacked,
                total=totals[i],
            )
        )
    parts.append(
        _legend_at(
            left, 56 + band * len(categories), width, [(g.name, g.colour, False) for g in groups]
        )
    )
    parts.append("</svg>")
    return "".join(parts)


def _bars(
    groups: Sequence[Bars],
    i: int,
    *,
    left: float,
    y0: float,
    scale: float,
    value_text: Callable[[float], str],
    stacked: bool,
    total: float,
) -> list[str]:
    out, x = [], left
    for j, g in enumerate(groups):
        value = g.values[i]
        w = max(value * scale, 0.0)
        y = y0 + 3 if stacked else y0 + 4 + 10 * j
        h = 10 if stacked else 9
        tip = f"{g.name}: {value_text(value)}"
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h}" '
            f'fill="{g.colour}"><title>{escape(tip)}</title></rect>'
        )
        if stacked:
            x += w
        else:
            out.append(
                f'<text x="{left + w + 4:.1f}" y="{y + 8:.1f}" {FONT} font-size="9">'
                f"{escape(value_text(value))}</text>"
            )
    if stacked:
        out.append(
            f'<text x="{x + 4:.1f}" y="{y0 + 12:.1f}" {FONT}>{escape(value_text(total))}</text>'
        )
    return out


def _finite(x: float, y: float, log_x: bool) -> bool:
    return math.isfinite(x) and math.isfinite(y) and (x > 0 or not log_x)


def _frame(
    width: int, height: int, *, x_ticks: list[float], y_ticks: list[float], log_x: bool, bottom: int
) -> _Frame:
    left, top = 64.0, 30.0
    plot_w, plot_h = width - left - 20.0, height - top - bottom
    x_lo, x_hi = x_ticks[0], x_ticks[-1]
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    if log_x:
        lo, hi = math.log10(x_lo), math.log10(x_hi)
        span = (hi - lo) or 1.0

        def x_of(v: float) -> float:
            return left + (math.log10(v) - lo) / span * plot_w
    else:
        span = (x_hi - x_lo) or 1.0

        def x_of(v: float) -> float:
            return left + (v - x_lo) / span * plot_w

    y_span = (y_hi - y_lo) or 1.0

    def y_of(v: float) -> float:
        return top + plot_h - (v - y_lo) / y_span * plot_h

    return _Frame(left, top, plot_w, plot_h, x_of, y_of)


def _axes(frame: _Frame, x_ticks: list[float], y_ticks: list[float], log_x: bool) -> list[str]:
    bottom = frame.top + frame.height
    out = [
        f'<rect x="{frame.left}" y="{frame.top}" width="{frame.width:.1f}" '
        f'height="{frame.height:.1f}" fill="#fafafa" stroke="#bdbdbd"/>'
    ]
    for t in x_ticks:
        x = frame.x(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{bottom:.1f}" '
            f'stroke="#e4e4e4"/><text x="{x:.1f}" y="{bottom + 14:.1f}" '
            f'text-anchor="middle" {FONT}>{_tick_text(t, log_x)}</text>'
        )
    for t in y_ticks:
        y = frame.y(t)
        out.append(
            f'<line x1="{frame.left}" y1="{y:.1f}" x2="{frame.left + frame.width:.1f}" '
            f'y2="{y:.1f}" stroke="#e4e4e4"/><text x="{frame.left - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end" {FONT}>{_tick_text(t, False)}</text>'
        )
    return out


def _axis_labels(frame: _Frame, x_label: str, y_label: str) -> str:
    x_mid, y_mid = frame.left + frame.width / 2, frame.top + frame.height / 2
    return (
        f'<text x="{x_mid:.1f}" y="{frame.top + frame.height + 30:.1f}" '
        f'text-anchor="middle" {FONT}>{escape(x_label)}</text>'
        f'<text x="14" y="{y_mid:.1f}" text-anchor="middle" {FONT} '
        f'transform="rotate(-90 14 {y_mid:.1f})">{escape(y_label)}</text>'
    )


def _line(frame: _Frame, s: Series, log_x: bool) -> str:
    kept = [(i, x, y) for i, (x, y) in enumerate(s.points) if _finite(x, y, log_x)]
    if not kept:
        return ""
    coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for _, x, y in kept)
    dash = ' stroke-dasharray="5 4"' if s.dashed else ""
    out = [
        f'<g><title>{escape(s.name)}</title><polyline points="{coords}" fill="none" '
        f'stroke="{s.colour}" stroke-width="1.8"{dash}/>'
    ]
    dots = len(kept) <= 80  # beyond that, markers would hide the line
    for i, x, y in kept:
        label = s.labels[i] if i < len(s.labels) else ""
        cx, cy = frame.x(x), frame.y(y)
        if dots:
            tip = f"{s.name} {label}: x {x:.4g}, y {y:.4g}".replace("  ", " ")
            out.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{s.colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        if label:
            out.append(
                f'<text x="{cx + 5:.1f}" y="{cy - 5:.1f}" {FONT} font-size="9" '
                f'fill="{s.colour}">{escape(label)}</text>'
            )
    out.append("</g>")
    return "".join(out)


def _legend(frame: _Frame, entries: list[tuple[str, str, bool]], height: int) -> str:
    rows = math.ceil(len(entries) / 2)
    return _legend_at(frame.left, height - 16 * rows - 4, int(frame.left + frame.width), entries)


def _legend_at(left: float, top: float, width: float, entries: list[tuple[str, str, bool]]) -> str:
    out, column = [], (width - left) / 2
    for k, (name, colour, dashed) in enumerate(entries):
        x, y = left + column * (k % 2), top + 16 * (k // 2)
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        out.append(
            f'<line x1="{x:.1f}" y1="{y + 8:.1f}" x2="{x + 22:.1f}" y2="{y + 8:.1f}" '
            f'stroke="{colour}" stroke-width="6"{dash}/>'
            f'<text x="{x + 28:.1f}" y="{y + 12:.1f}" {FONT}>{escape(name)}</text>'
        )
    return "".join(out)


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text x="8" y="18" {FONT} font-size="13" font-weight="600">{escape(title)}</text>'
    )


def _empty(title: str, width: int) -> str:
    return (
        _open(width, 60, title)
        + f'<text x="8" y="44" {FONT} fill="{GREY}">nothing recorded yet</text></svg>'
    )


def _linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if hi - lo < 1e-12:
        lo, hi = lo - (abs(lo) * 0.05 or 1.0), hi + (abs(hi) * 0.05 or 1.0)
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = [first]
    while ticks[-1] < hi - 1e-9 * step:
        ticks.append(ticks[-1] + step)
    return [round(t, 10) for t in ticks]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2 and 5 times powers of ten, from the last at or below ``lo`` to the first
    at or above ``hi``."""
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
    candidates = [m * 10.0**k for k in decades for m in (1, 2, 5)]
    start = max(c for c in candidates if c <= lo)
    end = min(c for c in candidates if c >= hi)
    return [c for c in candidates if start <= c <= end]


def _tick_text(value: float, log_x: bool) -> str:
    if log_x or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.4g}"
